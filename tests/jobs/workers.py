"""Real ``rqworker`` processes for the crash, recovery and cancellation tests."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from pipelines.models import Pipeline, PipelineVersion
from tests.pipelines.documents import pdf

ROOT = Path(__file__).resolve().parents[2]
WORKER_CLASSES = ["jobs.worker.Worker", "rq.Worker"]  # ours, and RQ's stock forking worker


def environment(media_root: Path, **env: str) -> dict[str, str]:
    """A process's environment for the test database, Redis and media folder, with the test-only
    stages of ``tests/pipelines/crash_stages.py`` loaded."""
    database = settings.DATABASES["default"]
    url = (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )
    return {**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL, "MEDIA_ROOT": str(media_root),
            "DJANGO_SETTINGS_MODULE": "pipeline_project.settings",
            "PIPELINE_STAGE_MODULES": "tests.pipelines.crash_stages", **env}  # fmt: skip


def start_rqworker(media_root: Path, worker_class: str = "jobs.worker.Worker", **env: str) -> subprocess.Popen:
    """``manage.py rqworker`` on the job queues, on the test database, in its own process group."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "high", "default", "low", "--worker-class", worker_class],
        cwd=ROOT,
        env=environment(media_root, **env),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=_log(),
    )


def _log():
    """Where the workers' logs go: ``WORKER_LOG=/tmp/workers.log`` keeps them, to debug a test."""
    path = os.environ.get("WORKER_LOG")
    return subprocess.DEVNULL if path is None else open(path, "a")  # noqa: SIM115 (the worker holds it)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill_tree(pid: int) -> None:
    """SIGKILLs ``pid`` and every descendant (RQ's work horse runs in a process group of its own)."""
    pending, found = [pid], []
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children(current))
    for process in found:
        try:
            os.kill(process, signal.SIGKILL)
        except ProcessLookupError:
            pass


def slow_job(client, org) -> str:
    """A real document that takes the worker a few seconds: an 80,000-page PDF."""
    config = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": 100000}}]}
    pipeline = Pipeline.objects.create(organization=org, name="big", config=config)
    PipelineVersion.objects.create(pipeline=pipeline, version=1, config=config)
    document = pdf([f"Page {n}" for n in range(80_000)])
    response = client.post("/api/v1/upload", {"files": [SimpleUploadedFile("big.pdf", document)],
                                              "pipeline_id": str(pipeline.id)}, format="multipart")  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["jobs"][0]["id"]


def job_with(client, org, stages: list[dict]) -> str:
    """A text job running ``stages``. The pipeline is made here directly: the crash stages are
    registered in the worker processes, not necessarily in this one, whose API would refuse them."""
    config = {"stages": stages}
    pipeline = Pipeline.objects.create(organization=org, name=f"p{Pipeline.objects.count()}", config=config)
    PipelineVersion.objects.create(pipeline=pipeline, version=1, config=config)
    response = client.post("/api/v1/jobs", {"source_type": "text", "text": "hello world",
                                            "pipeline_id": str(pipeline.id)}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["id"]


def cancel_within_5_seconds(client, job_id: str) -> None:
    """Cancels ``job_id`` through the API; it must end ``cancelled`` within 5 seconds."""
    from jobs.models import Job, JobStatus

    started = time.monotonic()
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    wait_for(lambda: Job.objects.get(pk=job_id).status == JobStatus.CANCELLED, timeout=5)
    assert time.monotonic() - started < 5
