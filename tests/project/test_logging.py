"""LOG_FORMAT=json: one JSON object per line from web and workers, with the request id and the job
id on every line they concern; the periodic jobs log only when they act."""

import dataclasses
import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobStatus
from pipeline_project.lib import logs
from pipelines.stages import REGISTRY
from tests.jobs.factories import JobFactory

JOBS = "/api/v1/jobs"
ENV = {"DEBUG": "0", "SECRET_KEY": "s" * 40, "DJANGO_SETTINGS_MODULE": "pipeline_project.settings"}


def python(code: str, **environment) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter started as the service starts (settings from the environment)."""
    env = {**os.environ, **ENV, **environment}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def parsed(text: str) -> list[dict]:
    """Every line of ``text`` as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def json_log(tmp_path):
    """Log records of every logger, from this process and the processes it forks (the parser
    child), formatted as LOG_FORMAT=json formats them, into a file; returns a reader of its lines."""
    path = tmp_path / "log.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: parsed(path.read_text())
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def test_an_unknown_log_format_stops_start_up_naming_the_variable():
    result = python("import django; django.setup()", LOG_FORMAT="xml", DATABASE_URL="sqlite:////tmp/x.sqlite3")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "LOG_FORMAT" in result.stderr.splitlines()[-1]


def test_the_json_format_prints_one_object_per_line_with_the_fields_promised():
    code = """
import django, logging
django.setup()
from pipeline_project.lib import logs
log = logging.getLogger("pipeline.test")
log.info("plain line")
with logs.bound(logs.request_id, "req-1"), logs.bound(logs.job_id, "job-1"):
    log.warning("with %s", "context", extra={"attempt": 2})
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("it broke\\non two lines")
"""
    result = python(code, LOG_FORMAT="json", DATABASE_URL="sqlite:////tmp/x.sqlite3")
    assert result.returncode == 0, result.stderr
    first, second, third = parsed(result.stderr)
    assert list(first)[:4] == ["timestamp", "level", "logger", "message"]
    assert first["timestamp"].endswith("+00:00") and "T" in first["timestamp"]
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "pipeline.test", "plain line")
    assert "request_id" not in first and "job_id" not in first and "context" not in first
    assert second["message"] == "with context" and second["attempt"] == 2
    assert (second["request_id"], second["job_id"]) == ("req-1", "job-1")
    assert third["message"] == "it broke\non two lines" and "ZeroDivisionError" in third["exception"]


def test_the_plain_format_shows_the_ids_only_when_there_are_some():
    code = """
import django, logging
django.setup()
from pipeline_project.lib import logs
log = logging.getLogger("pipeline.test")
log.warning("outside")
with logs.bound(logs.request_id, "req-1"):
    log.warning("inside")
"""
    result = python(code, DATABASE_URL="sqlite:////tmp/x.sqlite3")
    outside, inside = result.stderr.splitlines()
    assert outside.endswith("WARNING pipeline.test outside")
    assert inside.endswith("WARNING pipeline.test [req=req-1] inside")


@pytest.mark.django_db
def test_a_requests_lines_carry_its_request_id(as_member, json_log):
    # An unclosed streamed response of an earlier test may have left its id bound in this thread.
    logs.request_id.set(None)
    response = as_member.get(f"{JOBS}/{uuid.uuid4()}", HTTP_X_REQUEST_ID="trace-7")
    assert response.status_code == 404 and response["X-Request-ID"] == "trace-7"
    other = as_member.get(f"{JOBS}/{uuid.uuid4()}")  # an id of its own
    lines = [line for line in json_log() if line["logger"] == "django.request"]
    assert [line["request_id"] for line in lines] == ["trace-7", other["X-Request-ID"]]
    assert all(line["level"] == "WARNING" and line["message"].startswith("Not Found") for line in lines)
    assert logs.request_id.get() is None  # reset once the response is closed


@pytest.mark.django_db(transaction=True)
def test_a_jobs_lines_carry_its_job_id_the_parser_childs_included(as_member, run_worker, json_log, monkeypatch):
    detect = REGISTRY["detect"]

    def run(context, params):
        logging.getLogger("pipeline.test.stage").warning("detecting %s", context.file_name)
        return detect.run(context, params)

    monkeypatch.setitem(REGISTRY, "detect", dataclasses.replace(detect, run=run))  # before the child is forked
    job_id = as_member.post(JOBS, {"source_type": "text", "text": "hello"}, format="json").json()["id"]
    run_worker()
    lines = json_log()
    stage = [line for line in lines if line["logger"] == "pipeline.test.stage"]
    assert [(line["message"], line["job_id"]) for line in stage] == [("detecting input.txt", job_id)]
    done = [line for line in lines if line["logger"] == "rq.worker" and "Job OK" in line["message"]]
    assert [line["job_id"] for line in done] == [job_id]
    assert logs.job_id.get() is None


def test_rqworker_prints_json_lines(settings):
    result = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst", "--worker-class", "jobs.worker.Worker"],
        env={**os.environ, **ENV, "LOG_FORMAT": "json", "REDIS_URL": settings.REDIS_URL},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""  # RQ's own handler (coloured, on stdout) is not installed
    lines = parsed(result.stderr)
    assert any(line["logger"] == "rq.worker" and "started" in line["message"] for line in lines)
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)


@pytest.mark.django_db(transaction=True)
def test_the_periodic_jobs_log_nothing_when_there_is_nothing_to_do(caplog):
    from accounts.tasks import expire_api_keys
    from audit.tasks import prune_logs, write_queued_records
    from jobs.tasks import cleanup_uploads, expire_results, recover_jobs
    from webhooks.tasks import prune_deliveries, recover_deliveries

    with caplog.at_level(logging.DEBUG):
        for task in (recover_jobs, recover_deliveries, write_queued_records, expire_results, cleanup_uploads,
                     prune_deliveries, prune_logs, expire_api_keys):  # fmt: skip
            task()
    assert [record for record in caplog.records if not record.name.startswith("django.db")] == []


@pytest.mark.django_db(transaction=True)
def test_rq_s_lines_about_housekeeping_jobs_are_left_out_and_real_jobs_keep_theirs(as_member, run_worker, caplog):
    from rq import Queue
    from rq.cron import CronScheduler

    from pipeline_project.lib.redis import get_redis

    scheduler = CronScheduler(connection=get_redis())
    scheduler.load_config_from_file("pipeline_project.cron")
    with caplog.at_level(logging.INFO, logger="rq"):
        housekeeping = [cron_job.enqueue(get_redis()) for cron_job in scheduler.get_jobs()[:3]]
        job_id = as_member.post(JOBS, {"source_type": "text", "text": "hello"}, format="json").json()["id"]
        writer = Queue("high", connection=get_redis()).jobs[-1]  # the audit writer the request enqueued
        run_worker()
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("rq.")]
    for job in [*housekeeping, writer]:
        assert job.meta.get(logs.HOUSEKEEPING) and not [line for line in lines if job.id in line], job.func_name
    assert not [line for line in lines if line.startswith("Enqueued job")]
    ours = [line for line in lines if job_id in line]
    assert any("jobs.tasks.run_job" in line for line in ours) and any("Job OK" in line for line in ours)


@pytest.mark.django_db(transaction=True)
def test_job_recovery_says_in_one_line_what_it_did(org, caplog):
    from jobs.tasks import recover_jobs

    JobFactory(organization=org, status=JobStatus.PROCESSING, heartbeat_at=timezone.now() - timedelta(hours=1))
    with caplog.at_level(logging.INFO, logger="jobs"):
        recover_jobs()
    (record,) = [record for record in caplog.records if record.name == "jobs.tasks"]
    assert record.levelno == logging.WARNING and record.recovered["requeued"] == 1
    assert record.getMessage().startswith("job recovery: 1 requeued, 0 failed")
