"""url sources: fetched by the worker from a real HTTP server on loopback, allowed for the test
through SSRF_ALLOWED_NETWORKS (everything private stays refused by default)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jobs.models import Job, JobStatus
from pipelines.models import Pipeline, PipelineVersion
from tests.jobs.workers import WORKER_CLASSES, cancel_within_5_seconds, kill_tree, start_rqworker, wait_for
from tests.pipelines.documents import pdf

pytestmark = pytest.mark.django_db(transaction=True)
DOCUMENT = pdf(["Fetched over HTTP"])


class Handler(BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(settings):
    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    Handler.routes = {
        "/report.pdf": (200, {"Content-Type": "application/pdf"}, DOCUMENT),
        "/moved": (302, {"Location": "/report.pdf"}, b""),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-private": (302, {"Location": "http://10.1.2.3/report.pdf"}, b""),
        "/flaky": (503, {}, b"try later"),
    }
    yield base
    httpd.shutdown()


def submit(client, url, **data):
    response = client.post("/api/v1/jobs", {"source_type": "url", "source_uri": url, **data}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize("path", ["/report.pdf", "/moved"])
def test_a_url_job_fetches_its_document_and_extracts_it(as_member, server, run_worker, path):
    job_id = submit(as_member, server + path)
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result.extracted_text == "Fetched over HTTP"
    job_file = job.files.get()
    assert job_file.mime_type == "application/pdf" and job_file.size == len(DOCUMENT)
    assert job_file.result["fetch"]["url"] == server + "/report.pdf"
    assert job.file_name == "report.pdf"


@pytest.mark.parametrize("path", ["/to-metadata", "/to-private"])
def test_redirects_to_private_addresses_are_refused(as_member, server, run_worker, path):
    job_id = submit(as_member, server + path)
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED and job.error["code"] == "unsafe_url" and job.error["stage"] == "fetch"


def test_http_errors_and_size_limits(as_member, server, run_worker, settings):
    missing = submit(as_member, server + "/nope.pdf")
    settings.FETCH_MAX_SIZE = 100
    big = submit(as_member, server + "/report.pdf")
    run_worker()
    assert Job.objects.get(pk=missing).error["code"] == "fetch_failed"
    assert Job.objects.get(pk=big).error["code"] == "too_large"


def test_transient_errors_are_retried_per_the_stage_config(as_member, org, server, run_worker, caplog):
    config = {"stages": [{"name": "fetch", "retry": {"attempts": 3, "backoff_seconds": 0}}, {"name": "detect"}]}
    pipeline = Pipeline.objects.create(organization=org, name="fetching", config=config)
    PipelineVersion.objects.create(pipeline=pipeline, version=1, config=config)
    job_id = submit(as_member, server + "/flaky", pipeline_id=str(pipeline.id))
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED and job.error["code"] == "fetch_failed"
    assert sum("retry" in record.getMessage() for record in caplog.records) == 2  # 3 attempts


def test_private_addresses_are_refused_by_default(as_member):
    response = as_member.post("/api/v1/jobs", {"source_type": "url", "source_uri": "http://127.0.0.1:9/x"},
                              format="json")  # fmt: skip
    assert response.status_code == 400


class Drip(BaseHTTPRequestHandler):
    """A server that sends a large document a few bytes at a time (a slow or hostile one)."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(10**6))
        self.end_headers()
        try:
            for _ in range(10**4):
                self.wfile.write(b"drip " * 20)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the worker hung up

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_cancelling_a_url_job_mid_download_ends_it_within_5_seconds(as_member, settings, worker_class):
    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    job_id = submit(as_member, f"http://127.0.0.1:{httpd.server_port}/slow.txt")
    worker = start_rqworker(settings.MEDIA_ROOT, worker_class, SSRF_ALLOWED_NETWORKS="127.0.0.1/32")
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).progress_stage == "fetch")  # downloading
        cancel_within_5_seconds(as_member, job_id)
    finally:
        kill_tree(worker.pid)
        worker.wait(timeout=30)
        httpd.shutdown()
    assert not Job.objects.get(pk=job_id).files.exists()  # nothing kept of the download
