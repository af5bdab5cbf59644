"""``/metrics`` (pipeline_project/metrics.py): Prometheus's text format, parsed with prometheus_client's
own parser and checked by ``promtool check metrics``; our counters move where things happen, those
of a real ``rqworker`` process included (multiprocess mode: this session's directory, tests/conftest.py);
the gauges read at scrape time appear once; ``METRICS_TOKEN`` guards it."""

import shutil
import signal
import subprocess

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Job, JobStatus
from pipeline_project import metrics
from pipeline_project.lib.ssrf import close_kept_pools
from tests.jobs.workers import job_with, kill_tree, start_rqworker, wait_for
from tests.webhooks.receiver import Receiver, Response
from webhooks import signing
from webhooks.delivery import deliver_due
from webhooks.models import WebhookDelivery, WebhookSubscription

OURS = {
    "pipeline_jobs_created": "counter",
    "pipeline_jobs_finished": "counter",
    "pipeline_job_duration_seconds": "histogram",
    "pipeline_stage_duration_seconds": "histogram",
    "pipeline_webhook_deliveries": "counter",
    "pipeline_queue_depth": "gauge",
    "pipeline_workers": "gauge",
    "pipeline_oldest_queued_seconds": "gauge",
}
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Scrape:
    """One answer of ``/metrics``, parsed."""

    def __init__(self, client, **headers):
        response = client.get("/metrics", **headers)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        self.text = response.content.decode()
        self.families = {family.name: family for family in text_string_to_metric_families(self.text)}
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in self.families.values()
            for sample in family.samples
        }

    def __call__(self, name: str, **labels) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def assert_types(self, *names: str) -> None:
        for name in names:
            assert self.families[name].type == OURS[name], name

    def since(self, earlier: "Scrape", name: str, **labels) -> float:
        """How much a sample grew since the ``earlier`` scrape."""
        return self(name, **labels) - earlier(name, **labels)


def text_job(client, text="Hello, metrics.", **fields) -> str:
    response = client.post("/api/v1/jobs", {"source_type": "text", "text": text, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.django_db
def test_it_serves_ours_and_django_prometheus_metrics(anon, as_member, django_capture_on_commit_callbacks):
    before = Scrape(anon)
    with django_capture_on_commit_callbacks(execute=True):  # counted (and enqueued) once committed
        text_job(as_member, priority="high")
        text_job(as_member, priority="high", start=False)  # a draft is created too (and not queued)
    after = Scrape(anon)

    after.assert_types(
        "pipeline_jobs_created", "pipeline_queue_depth", "pipeline_workers", "pipeline_oldest_queued_seconds"
    )
    assert {"django_http_requests_before_middlewares", "django_http_responses_total_by_status_view_method"} <= set(
        after.families
    )
    assert after.since(before, "pipeline_jobs_created_total", priority="high", source_type="text") == 2
    # Read at scrape time, by this process only: one sample each, no per-process copies.
    assert [sample.labels for sample in after.families["pipeline_queue_depth"].samples] == [
        {"queue": name} for name in ("high", "default", "low", "webhooks")
    ]
    assert after("pipeline_queue_depth", queue="high") == 1
    assert len(after.families["pipeline_workers"].samples) == 1
    assert after("pipeline_oldest_queued_seconds") > 0
    ok = after("django_http_responses_total_by_status_view_method_total", status="200", view="metrics", method="GET")
    assert ok >= 1
    assert after("django_db_execute_total", alias="default", vendor="postgresql") > 0  # django-prometheus's backend


@pytest.fixture
def rqworker(settings):
    processes = []

    def start(**env):
        processes.append(start_rqworker(settings.MEDIA_ROOT, **env))
        return processes[-1]

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)  # a warm shutdown: the worker's teardown runs
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_worker_processs_counters_show_in_the_webs_metrics(anon, as_member, org, rqworker, settings):
    before = Scrape(anon)
    completes = text_job(as_member)
    fails = job_with(as_member, org, [{"name": "crash_exception"}])  # a test-only stage, loaded by the worker
    process = rqworker()
    wait_for(lambda: Job.objects.filter(pk__in=[completes, fails], status__in=FINISHED).count() == 2, timeout=60)
    after = Scrape(anon)

    assert process.poll() is None
    after.assert_types("pipeline_jobs_finished", "pipeline_job_duration_seconds", "pipeline_stage_duration_seconds")
    assert Job.objects.get(pk=fails).status == JobStatus.FAILED
    assert after.since(before, "pipeline_jobs_finished_total", status="completed") == 1  # once per job
    assert after.since(before, "pipeline_jobs_finished_total", status="failed") == 1
    assert after.since(before, "pipeline_job_duration_seconds_count") == 2
    for stage in ("detect", "extract_text", "language", "quality"):
        assert after.since(before, "pipeline_stage_duration_seconds_count", stage=stage) == 1, stage
    assert after("pipeline_workers") >= 1
    assert after("pipeline_queue_depth", queue="default") == 0
    # Written by the worker process into this session's directory, beside this process's files.
    writers = {path.stem.split("_", 1)[1] for path in settings.PROMETHEUS_MULTIPROC_DIR.glob("*.db")}
    assert metrics.process_id() in writers and len(writers) >= 2


@pytest.mark.django_db
def test_jobs_ended_outside_a_worker_count_as_finished(anon, as_member, django_capture_on_commit_callbacks):
    job_id = text_job(as_member)
    before = Scrape(anon)
    with django_capture_on_commit_callbacks(execute=True):
        assert as_member.delete(f"/api/v1/jobs/{job_id}").status_code == 204  # a queued job: cancelled at once
    after = Scrape(anon)
    assert after.since(before, "pipeline_jobs_finished_total", status="cancelled") == 1


@pytest.mark.django_db
def test_webhook_deliveries_count_by_result(anon, org, settings):
    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    close_kept_pools()
    with Receiver([Response(200), Response(500)]) as receiver:
        active = WebhookSubscription.objects.create(
            organization=org, url=receiver.url(), events=["*"], secret=signing.new_secret()
        )
        disabled = WebhookSubscription.objects.create(
            organization=org, url=receiver.url(), events=["*"], secret=signing.new_secret(), is_active=False
        )
        for subscription in (active, active, disabled):
            WebhookDelivery.objects.create(
                organization=org,
                subscription=subscription,
                url=subscription.url,
                event_type="job.completed",
                payload={"type": "job.completed"},
                message_id=signing.new_message_id(),
                next_attempt_at=timezone.now(),
            )
        before = Scrape(anon)
        assert deliver_due() == 3
    close_kept_pools()
    after = Scrape(anon)
    after.assert_types("pipeline_webhook_deliveries")
    for result in ("succeeded", "retrying", "disabled"):
        assert after.since(before, "pipeline_webhook_deliveries_total", result=result) == 1, result


@pytest.mark.django_db
def test_promtool_accepts_the_output(anon, as_member, django_capture_on_commit_callbacks):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/ensure-test-tools.sh installs Debian's prometheus package)")
    with django_capture_on_commit_callbacks(execute=True):  # every metric of ours with a sample
        as_member.delete(f"/api/v1/jobs/{text_job(as_member)}")
    metrics.job_duration(0.3)
    metrics.stage_durations({"detect": {"duration_ms": 2}, "extract_text": {"duration_ms": 40}})
    metrics.webhook_deliveries(["succeeded", "retrying"])
    scrape = Scrape(anon)
    scrape.assert_types(*OURS)
    result = subprocess.run([promtool, "check", "metrics"], input=scrape.text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_metrics_token_is_required_when_set(anon, settings):
    settings.METRICS_TOKEN = "metrics-secret-token"

    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic metrics-secret-token"}):
        response = anon.get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "pipeline_workers" in Scrape(anon, HTTP_AUTHORIZATION="Bearer metrics-secret-token").families


@pytest.mark.django_db
def test_metrics_is_read_only(anon):
    assert anon.post("/metrics").status_code == 405
