import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job, JobFile, JobStatus
from tests.jobs.factories import JobFactory

UPLOAD, JOBS = "/api/v1/upload", "/api/v1/jobs"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats'
                         '.org/package/2006/content-types"/>')  # fmt: skip
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def upload(client, *files, **fields):
    return client.post(UPLOAD, {"files": list(files), **fields}, format="multipart")


def stored_files(settings):
    root = settings.MEDIA_ROOT
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_it_creates_one_queued_job_per_file(as_member, org, settings, rq_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            as_member,
            SimpleUploadedFile("report.pdf", PDF, content_type="application/octet-stream"),
            SimpleUploadedFile("letter.docx", docx_bytes()),
            SimpleUploadedFile("notes.md", "# Héllo\n\nwörld".encode()),
            priority="low",
            metadata='{"batch": 7}',
            detect="true",
        )
    assert response.status_code == 201, response.content
    jobs = response.json()["jobs"]
    assert [(j["file_name"], j["mime_type"], j["status"], j["priority"]) for j in jobs] == [
        ("report.pdf", "application/pdf", "queued", "low"),
        ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "queued", "low"),
        ("notes.md", "text/markdown", "queued", "low"),
    ]
    assert all(j["metadata"] == {"batch": 7} and j["source_type"] == "upload" for j in jobs)
    assert rq_queue("low") == [j["id"] for j in jobs]
    pdf_file = JobFile.objects.get(job_id=jobs[0]["id"])
    assert pdf_file.storage_name.startswith(f"uploads/{org.id}/{jobs[0]['id']}/")
    assert pdf_file.storage_name.endswith("/report.pdf") and pdf_file.size == len(PDF)
    assert (settings.MEDIA_ROOT / pdf_file.storage_name).read_bytes() == PDF
    assert pdf_file.result == {"detection": {"mime_type": "application/pdf", "encoding": None}}
    import hashlib

    assert pdf_file.sha256 == hashlib.sha256(PDF).hexdigest()
    assert len(stored_files(settings)) == 3


def test_the_type_comes_from_the_content_not_the_name_or_claim(as_member, settings):
    exe = SimpleUploadedFile("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00" * 64, content_type="application/pdf")
    response = upload(as_member, exe)
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    gif = SimpleUploadedFile("notes.txt", b"GIF89a" + bytes(64), content_type="text/plain")  # not OCRed
    assert upload(as_member, gif).status_code == 415
    assert not Job.objects.exists() and stored_files(settings) == []


def test_a_bad_file_among_good_ones_stores_nothing(as_member, settings):
    response = upload(as_member, SimpleUploadedFile("a.pdf", PDF), SimpleUploadedFile("b.bin", bytes(100)))
    assert response.status_code == 415
    assert not Job.objects.exists() and not JobFile.objects.exists() and stored_files(settings) == []


def test_a_failure_while_storing_removes_what_was_stored(as_member, settings, monkeypatch):
    from jobs import services

    real = services._store_upload
    calls = []

    def fail_on_second(job, upload, stored, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(job, upload, stored, **kwargs)

    monkeypatch.setattr(services, "_store_upload", fail_on_second)
    with pytest.raises(OSError):
        upload(as_member, SimpleUploadedFile("a.pdf", PDF), SimpleUploadedFile("b.pdf", PDF))
    assert not Job.objects.exists() and stored_files(settings) == []


def test_it_refuses_files_over_the_size_limit_with_413(as_member, settings):
    settings.UPLOAD_MAX_FILE_SIZE = 1024
    response = upload(as_member, SimpleUploadedFile("big.txt", b"a" * 4096))
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert not Job.objects.exists() and stored_files(settings) == []


def test_it_refuses_too_many_files_and_empty_requests(as_member, settings):
    settings.UPLOAD_MAX_FILES = 2
    response = upload(as_member, *[SimpleUploadedFile(f"{i}.txt", b"hello") for i in range(3)])
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_files"
    response = as_member.post(UPLOAD, {"priority": "high"}, format="multipart")
    assert response.status_code == 400 and "files" in response.json()["error"]["details"]
    assert upload(as_member, SimpleUploadedFile("empty.txt", b"")).json()["error"]["code"] == "empty_file"


def test_it_validates_the_form_fields(as_member, settings):
    response = upload(as_member, SimpleUploadedFile("a.txt", b"hello"), priority="asap", metadata="{nope")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"priority", "metadata"}
    assert not Job.objects.exists() and stored_files(settings) == []


def test_json_bodies_are_refused_with_415(as_member):
    assert as_member.post(UPLOAD, {"files": []}, format="json").status_code == 415


@pytest.mark.parametrize(
    "name, stored_suffix, shown",
    [
        ("../../etc/passwd.txt", "/passwd.txt", "passwd.txt"),
        ("..\\..\\win.ini.txt", "/win.ini.txt", "win.ini.txt"),
        ("re\x00port.txt", "/report.txt", "report.txt"),
        ("naïve café 文件.txt", "/naïve café 文件.txt", "naïve café 文件.txt"),
        ("a" * 300 + ".txt", "/" + "a" * 116 + ".txt", "a" * 251 + ".txt"),
        ("<script>.txt", "/_script_.txt", "<script>.txt"),
        (".hidden", "/hidden", ".hidden"),
    ],
)
def test_file_names_are_stored_safely(as_member, settings, name, stored_suffix, shown):
    response = upload(as_member, SimpleUploadedFile(name, b"plain text"))
    assert response.status_code == 201, response.content
    job_file = JobFile.objects.get()
    assert job_file.storage_name.endswith(stored_suffix) and job_file.original_name == shown
    path = (settings.MEDIA_ROOT / job_file.storage_name).resolve()
    assert path.is_relative_to(settings.MEDIA_ROOT.resolve() / "uploads") and path.read_bytes() == b"plain text"


def test_viewers_cannot_upload(as_viewer):
    assert upload(as_viewer, SimpleUploadedFile("a.txt", b"hello")).status_code == 403


# --- files of a draft job ------------------------------------------------------------------


@pytest.fixture
def draft(org):
    return JobFactory(organization=org, status=JobStatus.DRAFT, source_type="upload", source_uri="", file_name="")


def add(client, job, *files):
    return client.post(f"{JOBS}/{job.id}/files", {"files": list(files)}, format="multipart")


def test_files_can_be_added_listed_and_removed_on_a_draft(as_member, draft, settings,
                                                          django_capture_on_commit_callbacks):  # fmt: skip
    response = add(as_member, draft, SimpleUploadedFile("a.pdf", PDF), SimpleUploadedFile("b.txt", b"hello"))
    assert response.status_code == 201, response.content
    added = response.json()["files"]
    assert [(f["name"], f["mime_type"], f["status"]) for f in added] == [
        ("a.pdf", "application/pdf", "pending"), ("b.txt", "text/plain", "pending")]  # fmt: skip
    listed = as_member.get(f"{JOBS}/{draft.id}/files").json()
    assert [f["id"] for f in listed["items"]] == [f["id"] for f in added] and listed["total"] == 2
    draft.refresh_from_db()
    assert draft.file_name == "a.pdf" and draft.file_size == len(PDF) + 5
    with django_capture_on_commit_callbacks(execute=True):
        assert as_member.delete(f"{JOBS}/{draft.id}/files/{added[1]['id']}").status_code == 204
    assert [f.original_name for f in draft.files.all()] == ["a.pdf"]
    assert len(stored_files(settings)) == 1
    assert as_member.post(f"{JOBS}/{draft.id}/start").json()["status"] == "queued"


def test_files_change_only_on_drafts(as_member, org):
    job = JobFactory(organization=org, status=JobStatus.QUEUED)
    response = add(as_member, job, SimpleUploadedFile("a.txt", b"hello"))
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    job_file = JobFile.objects.create(job=job, storage_name="x", original_name="x", size=1, mime_type="text/plain",
                                      sha256="0" * 64)  # fmt: skip
    assert as_member.delete(f"{JOBS}/{job.id}/files/{job_file.id}").status_code == 409


def test_a_draft_holds_at_most_job_max_files(as_member, draft, settings):
    settings.JOB_MAX_FILES = 2
    assert add(as_member, draft, SimpleUploadedFile("a.txt", b"one")).status_code == 201
    response = add(as_member, draft, SimpleUploadedFile("b.txt", b"two"), SimpleUploadedFile("c.txt", b"three"))
    assert response.status_code == 409 and response.json()["error"]["code"] == "file_limit"
    assert draft.files.count() == 1 and len(stored_files(settings)) == 1


def test_files_of_other_organizations_are_404(as_outsider, as_member, draft, org):
    assert add(as_outsider, draft, SimpleUploadedFile("a.txt", b"hello")).status_code == 404
    assert as_outsider.get(f"{JOBS}/{draft.id}/files").status_code == 404
    other = JobFactory(status=JobStatus.DRAFT)
    other_file = JobFile.objects.create(job=other, storage_name="x", original_name="x", size=1,
                                        mime_type="text/plain", sha256="0" * 64)  # fmt: skip
    assert as_member.delete(f"{JOBS}/{draft.id}/files/{other_file.id}").status_code == 404
    assert as_member.delete(f"{JOBS}/{draft.id}/files/not-a-uuid").status_code == 404


def test_a_files_part_that_is_not_a_file_is_400_not_ignored(as_member):
    document = SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")
    response = as_member.post("/api/v1/upload", {"files": [document, "just text"]}, format="multipart")
    assert response.status_code == 400 and "files" in response.json()["error"]["details"]
    assert not Job.objects.exists()
