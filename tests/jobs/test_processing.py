"""Documents in, text out: the API, RQ and the engine end to end, on real PostgreSQL and Redis."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rq import Queue

from jobs.models import Job, JobEvent, JobFile, JobResult, JobStatus
from pipeline_project.lib.redis import get_redis
from pipelines.models import Pipeline, PipelineVersion
from tests.pipelines.documents import docx, pdf

pytestmark = pytest.mark.django_db(transaction=True)  # the worker runs on committed rows, like in production
JOBS = "/api/v1/jobs"


def upload(client, name, data, **fields):
    response = client.post("/api/v1/upload", {"files": [SimpleUploadedFile(name, data)], **fields}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["jobs"][0]["id"]


@pytest.mark.parametrize(
    "name, data, text",
    [
        ("report.pdf", pdf(["Quarterly report", "Revenue grew"]), "Quarterly report\n\nRevenue grew"),
        ("letter.docx", docx(["Dear Ada,", "Thanks."], table=[["a", "b"]]), "Dear Ada,\nThanks.\na\tb"),
        ("page.html", b"<html><body><script>x()</script><h1>Title</h1><p>Body text</p></body></html>",
         "Title\nBody text"),
        ("notes.txt", "Grüße aus Köln".encode(), "Grüße aus Köln"),
    ],
)  # fmt: skip
def test_a_document_goes_in_and_its_text_comes_out(as_member, run_worker, name, data, text):
    job_id = upload(as_member, name, data)
    early = as_member.get(f"{JOBS}/{job_id}/result")
    assert early.status_code == 409 and early.json()["error"]["code"] == "job_not_completed"
    run_worker()
    job = as_member.get(f"{JOBS}/{job_id}").json()
    assert job["status"] == "completed", job["error"]
    assert job["progress"]["percent"] == 100 and job["attempts"] == 1 and job["files"][0]["status"] == "completed"
    assert job["progress"]["stages_done"] == job["progress"]["stages_total"] == 5  # the default pipeline
    result = as_member.get(f"{JOBS}/{job_id}/result").json()
    assert result["text"] == text and result["text_size"] == len(text.encode())
    assert 0 <= result["quality_score"] <= 1 and result["expires_at"]
    file_meta = result["metadata"]["files"][0]
    assert file_meta["name"] == name and "language" in file_meta and "quality" in file_meta
    plain = as_member.get(f"{JOBS}/{job_id}/result/text", HTTP_ACCEPT="text/plain")
    assert plain["Content-Type"].startswith("text/plain") and plain.content.decode() == text
    statuses = list(JobEvent.objects.filter(job_id=job_id).values_list("to_status", flat=True))
    assert statuses == ["queued", "processing", "completed"]


def test_large_texts_are_stored_and_streamed(as_member, run_worker, settings):
    settings.RESULT_INLINE_MAX_SIZE = 100
    text = "All work and no play makes Jack a dull boy. " * 50
    job_id = upload(as_member, "long.txt", text.encode())
    run_worker()
    result = as_member.get(f"{JOBS}/{job_id}/result").json()
    assert result["text"] is None and result["text_size"] == len(text)
    streamed = as_member.get(f"{JOBS}/{job_id}/result/text")
    assert b"".join(streamed.streaming_content).decode() == text


def test_a_corrupt_pdf_fails_with_a_clear_error(as_member, run_worker):
    job_id = upload(as_member, "broken.pdf", b"%PDF-1.4\nnot really a pdf at all")
    run_worker()
    job = as_member.get(f"{JOBS}/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_document" and job["error"]["stage"] == "extract_text"
    assert job["files"][0]["status"] == "failed" and job["files"][0]["error"]
    assert as_member.get(f"{JOBS}/{job_id}/result").status_code == 409  # job_not_completed: it failed


def test_a_zip_bomb_docx_fails_before_unpacking(as_member, org, run_worker):
    config = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_decompressed_mb": 1}}]}
    pipeline = Pipeline.objects.create(organization=org, name="strict", config=config)
    PipelineVersion.objects.create(pipeline=pipeline, version=1, config=config)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (3 * 1024 * 1024))
    job_id = upload(as_member, "bomb.docx", buffer.getvalue(), pipeline_id=str(pipeline.id))
    run_worker()
    assert Job.objects.get(pk=job_id).error["code"] == "too_large_decompressed"


def test_a_duplicate_enqueue_runs_once(as_member, run_worker):
    job_id = upload(as_member, "a.txt", b"hello there")
    Queue("default", connection=get_redis()).enqueue_call("jobs.tasks.run_job", args=(job_id,))  # a second copy
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED and job.attempts == 1
    assert JobEvent.objects.filter(job=job, to_status="processing").count() == 1


def test_a_cancelled_queued_job_is_not_run(as_member, run_worker):
    job_id = upload(as_member, "a.txt", b"hello there")
    assert as_member.delete(f"{JOBS}/{job_id}").status_code == 204
    Queue("default", connection=get_redis()).enqueue_call("jobs.tasks.run_job", args=(job_id,))
    run_worker()
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED


def test_retrying_a_failed_job_runs_it_again(as_member, run_worker):
    job_id = upload(as_member, "broken.pdf", b"%PDF-1.4\nbroken")
    run_worker()
    retry = as_member.post(f"{JOBS}/{job_id}/retry", {}, format="json").json()
    run_worker()
    assert Job.objects.get(pk=retry["id"]).status == JobStatus.FAILED  # same bytes, same verdict, but it ran
    assert Job.objects.get(pk=retry["id"]).attempts == 1


def test_the_same_bytes_through_the_same_pipeline_version_reuse_the_result(as_member, run_worker):
    first = upload(as_member, "a.txt", b"The same document, twice.")
    run_worker()
    second = upload(as_member, "b.txt", b"The same document, twice.")
    other = upload(as_member, "c.txt", b"A different document.")
    run_worker()
    result = as_member.get(f"{JOBS}/{second}/result").json()
    assert result["text"] == "The same document, twice."
    assert result["metadata"]["cache"] == {"hit": True, "source_job": first}
    assert result["metadata"]["files"][0]["name"] == "b.txt"
    assert "cache" not in as_member.get(f"{JOBS}/{other}/result").json()["metadata"]
    assert JobEvent.objects.filter(job_id=second, message=f"cache hit: {first}").exists()


def test_a_pdf_named_txt_is_processed_as_a_pdf(as_member, run_worker):
    job_id = upload(as_member, "actually-a.txt", pdf(["Hidden PDF"]))
    run_worker()
    assert as_member.get(f"{JOBS}/{job_id}/result").json()["text"] == "Hidden PDF"


def test_queue_health_reports_queues_workers_and_throughput(as_member, as_outsider, run_worker):
    upload(as_member, "a.txt", b"hello there")
    queued = as_member.get("/api/v1/health/queue").json()
    assert queued["queues"]["default"] == {"queued": 1, "started": 0, "failed": 0}
    assert set(queued["queues"]) == {"high", "default", "low", "webhooks"}
    run_worker()
    done = as_member.get("/api/v1/health/queue").json()
    assert done["queues"]["default"]["queued"] == 0
    assert done["jobs"]["last_1m"] == {"completed": 1, "failed": 0} and done["jobs"]["last_5m"]["completed"] == 1
    assert as_outsider.get("/api/v1/health/queue").json()["jobs"]["last_5m"]["completed"] == 0


def test_a_job_cancelled_as_it_finishes_ends_cancelled(as_member, run_worker, monkeypatch):
    from jobs import engine

    job_id = upload(as_member, "a.txt", b"hello there")
    real_finish = engine.job_complete

    def cancel_first(job, *args, **kwargs):  # the cancel request lands between the last stage and the end
        Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLING)
        return real_finish(job, *args, **kwargs)

    monkeypatch.setattr(engine, "job_complete", cancel_first)
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELLED and not JobResult.objects.filter(job=job).exists()


def test_expired_results_are_deleted_with_their_stored_text(as_member, run_worker, settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    settings.RESULT_INLINE_MAX_SIZE = 10
    kept, expired = (
        upload(as_member, "a.txt", b"kept for now, long text"),
        upload(as_member, "b.txt", b"old text, long"),
    )
    run_worker()
    stored = JobResult.objects.get(job_id=expired).output_uri
    assert (settings.MEDIA_ROOT / stored).exists()
    JobResult.objects.filter(job_id=expired).update(expires_at=timezone.now() - timedelta(seconds=1))
    out = io.StringIO()
    call_command("expire_results", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "Dry run: 1 expired results would be deleted; nothing changed."
    assert JobResult.objects.filter(job_id=expired).exists() and (settings.MEDIA_ROOT / stored).exists()
    out = io.StringIO()
    call_command("expire_results", "--batch-size", "1", stdout=out)
    assert out.getvalue().strip() == "1 expired results deleted"
    assert not (settings.MEDIA_ROOT / stored).exists()
    assert as_member.get(f"{JOBS}/{expired}/result").json()["error"]["code"] == "result_expired"
    assert as_member.get(f"{JOBS}/{kept}/result").status_code == 200


def test_a_job_with_several_files_processes_and_tracks_each(as_member, run_worker):
    job_id = as_member.post(JOBS, {"source_type": "upload", "start": False}, format="json").json()["id"]
    files = [SimpleUploadedFile("one.txt", b"First document."), SimpleUploadedFile("two.pdf", pdf(["Second one"]))]
    assert as_member.post(f"{JOBS}/{job_id}/files", {"files": files}, format="multipart").status_code == 201
    assert as_member.post(f"{JOBS}/{job_id}/start").status_code == 200
    run_worker()
    job = as_member.get(f"{JOBS}/{job_id}").json()
    assert job["status"] == "completed"
    assert [(f["name"], f["status"]) for f in job["files"]] == [("one.txt", "completed"), ("two.pdf", "completed")]
    assert job["progress"]["stages_total"] == 10  # 5 stages x 2 files
    result = as_member.get(f"{JOBS}/{job_id}/result").json()
    assert result["text"] == "First document.\n\nSecond one"
    assert [f["name"] for f in result["metadata"]["files"]] == ["one.txt", "two.pdf"]
    stages = JobFile.objects.get(job_id=job_id, original_name="two.pdf").result["stages"]
    assert set(stages) == {"detect", "extract_text", "ocr", "language", "quality"}
    assert all(s["started_at"] <= s["ended_at"] and s["duration_ms"] >= 0 for s in stages.values())
    assert stages["extract_text"]["output"]["page_count"] == 1
