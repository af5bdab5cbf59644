"""Scans and images through the API, a worker of our class and its parser process: the job's mode
reaches the ocr stage, per-page results come back in the result, a mode is validated; the
Markdown rendering at /result/markdown."""

import pytest

from jobs.models import Job
from tests.jobs.test_processing import JOBS, upload
from tests.pipelines.documents import image, pdf, scanned_pdf

pytestmark = pytest.mark.django_db(transaction=True)
PAGES = [["Minutes of the annual meeting of members"], ["The budget was approved without changes"]]


def result(client, job_id) -> dict:
    job = client.get(f"{JOBS}/{job_id}").json()
    assert job["status"] == "completed", job["error"]
    return client.get(f"{JOBS}/{job_id}/result").json()


def test_a_scanned_pdf_job_gives_its_text_and_its_pages(as_member, run_worker):
    job_id = upload(as_member, "minutes.pdf", scanned_pdf(pdf(PAGES), keep_text=(2,)))
    run_worker()
    body = result(as_member, job_id)
    assert "annual meeting" in body["text"] and "budget was approved" in body["text"]
    pages = body["metadata"]["files"][0]["pages"]
    assert [(page["number"], page["source"]) for page in pages] == [(1, "ocr"), (2, "text_layer")]
    assert pages[0]["ocr_confidence"] > 50 and pages[0]["quality_score"] > 0.5 and pages[1]["ocr_confidence"] is None
    assert body["metadata"]["files"][0]["ocr"]["ocr_pages"] == 1
    plain = as_member.get(f"{JOBS}/{job_id}/result/text").content.decode()
    assert "annual meeting" in plain


def test_a_photo_is_accepted_and_read(as_member, run_worker):
    job_id = upload(as_member, "receipt.jpg", image(["Total due forty two euros"], "JPEG"))
    assert as_member.get(f"{JOBS}/{job_id}").json()["mime_type"] == "image/jpeg"
    run_worker()
    assert "forty two euros" in result(as_member, job_id)["text"]


def test_the_job_s_mode_reaches_the_pipeline_and_the_cache_keeps_modes_apart(as_member, run_worker):
    scan = scanned_pdf(pdf(PAGES))
    fast = upload(as_member, "scan.pdf", scan, mode="fast")
    run_worker()
    assert result(as_member, fast)["text"].strip() == ""  # fast: the text layer only, and there is none
    standard = upload(as_member, "scan.pdf", scan)  # the same bytes: no cache hit across modes
    run_worker()
    body = result(as_member, standard)
    assert "annual meeting" in body["text"] and "cache" not in body["metadata"]
    assert Job.objects.get(pk=standard).mode == "standard"


@pytest.mark.parametrize("mode", ["turbo", "OCR", ""])
def test_an_unknown_mode_is_refused(as_member, mode):
    response = as_member.post(JOBS, {"source_type": "text", "text": "x", "mode": mode}, format="json")
    assert response.status_code == 400 and "mode" in response.json()["error"]["details"]


def test_the_markdown_rendering_is_served_inline_or_from_storage(as_member, run_worker, settings):
    html = b"<html><body><h1>Title</h1><ul><li>one</li></ul><p>" + b"word " * 300 + b"</p></body></html>"
    job_id = upload(as_member, "page.html", html)
    assert as_member.get(f"{JOBS}/{job_id}/result/markdown").status_code == 409  # job_not_completed
    run_worker()
    body = result(as_member, job_id)
    assert body["markdown_url"].endswith(f"/api/v1/jobs/{job_id}/result/markdown")
    response = as_member.get(f"{JOBS}/{job_id}/result/markdown")
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.content.decode().startswith("# Title\n\n- one")
    settings.RESULT_INLINE_MAX_SIZE = 40  # past it, the rendering is stored and streamed
    stored = upload(as_member, "scan.png", image(["Stored rendering of a scanned page"]))
    run_worker()
    streamed = as_member.get(f"{JOBS}/{stored}/result/markdown")
    text = b"".join(streamed.streaming_content).decode()
    assert text.startswith("<!-- page 1 -->") and "Stored rendering" in text
    assert Job.objects.get(pk=stored).result.markdown_uri
