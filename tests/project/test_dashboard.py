"""The staff dashboard (/admin/dashboard/): counts, queues, the hourly chart, failure rates, failing
pipelines and stages, webhook failures; staff only; a bounded number of queries."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rq import Queue

from jobs.models import Job, JobStatus
from pipeline_project.dashboard import chart, nice_step
from pipeline_project.lib.redis import get_redis
from pipelines.services import default_pipeline_version
from tests.factories import UserFactory
from tests.jobs.factories import JobFactory
from webhooks.models import DeliveryStatus, WebhookDelivery

DASHBOARD = "/admin/dashboard/"


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def ended(org, status, *, hours_ago: float, stage=None, code="parse_error", version=None, created_before=60):
    """A job that ended ``hours_ago`` (its creation ``created_before`` seconds earlier)."""
    completed_at = timezone.now() - timedelta(hours=hours_ago)
    fields = {"pipeline": version.pipeline, "pipeline_version": version} if version else {}
    error = {"code": code, "message": "x", "stage": stage} if status == JobStatus.FAILED else None
    job = JobFactory(organization=org, status=status, error=error, **fields)
    Job.objects.filter(pk=job.pk).update(completed_at=completed_at,
                                         created_at=completed_at - timedelta(seconds=created_before))  # fmt: skip
    return job


def test_the_dashboard_shows_counts_chart_failures_and_queues(staff_client, org, other_org,
                                                              django_assert_max_num_queries):  # fmt: skip
    version = default_pipeline_version(organization=org)
    for hours_ago in (0, 0, 0, 2, 5, 5, 30):  # the last one ended before the window
        ended(org, JobStatus.COMPLETED, hours_ago=hours_ago, version=version)
    ended(org, JobStatus.FAILED, hours_ago=0, stage="extract_text", version=version)
    ended(org, JobStatus.FAILED, hours_ago=2, stage="extract_text", code="encrypted_pdf", version=version)
    ended(other_org, JobStatus.FAILED, hours_ago=5, stage="language")
    ended(other_org, JobStatus.CANCELLED, hours_ago=1)
    ended(org, JobStatus.FAILED, hours_ago=20, stage=None, code="worker_lost", created_before=20 * 3600)  # queued 20 h
    JobFactory(organization=org, status=JobStatus.QUEUED)
    JobFactory(organization=org, status=JobStatus.PROCESSING)
    Queue("default", connection=get_redis()).enqueue("builtins.print", job_id="waiting")
    delivery = WebhookDelivery.objects.create(
        organization=other_org, url="https://hooks.example.com/dead", event_type="job.failed", message_id="m1",
        payload={"type": "job.failed", "data": {}}, status=DeliveryStatus.FAILED, attempts=8, response_status=503,
    )  # fmt: skip

    with django_assert_max_num_queries(12):
        response = staff_client.get(DASHBOARD)
    assert response.status_code == 200
    text = response.content.decode()

    def figure(status: str) -> int:
        return int(re.search(rf'class="status-{status}"><span class="figure">(\d+)<', text)[1])

    assert (figure("queued"), figure("processing"), figure("draft")) == (1, 1, 0)
    assert (figure("completed"), figure("failed"), figure("cancelled")) == (6, 4, 1)  # in the window only
    assert re.search(r'id="failure-rate">40\.0%<', text)  # 4 failed of 10 completed or failed
    # The chart: an accessible SVG with a bar per hour that had jobs, each with its hover title.
    svg = re.search(r'<svg id="jobs-chart".*?</svg>', text, re.S)[0]
    assert 'role="img"' in svg and 'aria-labelledby="jobs-chart-title jobs-chart-desc"' in svg
    assert "6 jobs completed and 4 failed in the last 24 hours (40.0% failed)" in svg
    assert len(re.findall(r'<rect class="bar-completed"', svg)) == 3  # hours 0, 2 and 5 ago
    assert len(re.findall(r'<rect class="bar-failed"', svg)) == 4  # hours 0, 2, 5 and 20 ago
    assert re.search(r"<title>[^<]*: 3 completed, 1 failed</title>", svg)
    assert svg.count("<text") >= 8 + 5  # hour labels and y-axis values
    # Failing pipelines and stages, with links to the failed jobs.
    pipelines = re.search(r'id="failing-pipelines".*?</table>', text, re.S)[0]
    assert f"{version.pipeline.name} v{version.version}" in pipelines and "(no pipeline)" in pipelines
    assert f"pipeline_version__id__exact={version.pk}" in pipelines and "25.0%" in pipelines  # 2 of 8
    stages = re.search(r'id="failing-stages".*?</table>', text, re.S)[0]
    assert stages.index("extract_text") < stages.index("language") < stages.index("(no stage)")
    assert "error_stage=extract_text" in stages and "encrypted_pdf" in stages and "worker_lost" in stages
    # Queues, workers, the oldest queued job, django-rq.
    queues = re.search(r'id="dashboard-queues".*?</div>', text, re.S)[0]
    assert re.search(r"<td><a [^>]*>default</a></td><td>1</td>", queues)
    assert 'id="workers-alive">0<' in text and "nothing is processing jobs" in text
    assert re.search(r'id="oldest-queued">\d+\.\d s<', text)
    assert 'href="/admin/rq/"' in text
    # The latest webhook failures.
    assert f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/" in text and "hooks.example.com/dead" in text


def test_the_dashboard_of_an_empty_service(staff_client):
    response = staff_client.get(DASHBOARD)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="failure-rate">-<' in text and 'id="oldest-queued">none waiting<' in text
    assert '<svg id="jobs-chart"' in text and "<rect" not in text
    assert "0 jobs completed and 0 failed in the last 24 hours." in text
    assert text.count("No failures.") == 2


def test_the_dashboard_renders_when_redis_is_down(staff_client, settings, monkeypatch):
    from redis.exceptions import ConnectionError

    def down(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr("pipeline_project.dashboard.Worker.count", down)
    response = staff_client.get(DASHBOARD)
    assert response.status_code == 200 and "Redis does not answer: connection refused" in response.content.decode()


def test_only_staff_with_the_jobs_view_permission_see_it(client, db, member):
    client.force_login(member)
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    rq = client.get("/admin/rq/")  # django-rq's pages are staff only too
    assert rq.status_code == 302 and "/login/" in rq["Location"]
    client.force_login(UserFactory(is_staff=True))
    assert client.get(DASHBOARD).status_code == 403


def test_the_admin_index_links_to_the_dashboard_and_the_queues(staff_client):
    text = staff_client.get("/admin/").content.decode()
    assert f'href="{DASHBOARD}"' in text and 'href="/admin/rq/"' in text
    assert staff_client.get("/admin/rq/").status_code == 200


def test_django_rq_s_pages_are_for_superusers_only(client, db):
    """Their actions (empty a queue, delete or requeue RQ jobs) bypass our services and the audit trail."""
    client.force_login(UserFactory(is_staff=True, is_superuser=False))
    for path in ("/admin/rq/", "/admin/rq/queues/0/", "/admin/rq/queues/0/empty/"):
        assert client.get(path).status_code == 403, path
    assert client.post("/admin/rq/queues/0/empty/").status_code == 403
    assert 'href="/admin/rq/"' not in client.get("/admin/").content.decode()


def test_the_chart_scales_to_round_steps():
    assert [nice_step(peak) for peak in (0, 1, 4, 5, 9, 41, 400, 401)] == [1, 1, 1, 2, 5, 20, 100, 200]
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    hours = [{"hour": now - timedelta(hours=23 - n), "completed": n, "failed": n % 2} for n in range(24)]
    drawn = chart(hours)
    tallest = drawn["bars"][-1]  # 23 completed + 1 failed, on a 0..40 axis of 188 px
    assert tallest["completed_height"] == pytest.approx(23 / 40 * 188, abs=0.1)
    assert tallest["failed_y"] + tallest["failed_height"] == pytest.approx(tallest["completed_y"], abs=0.1)
    assert [line["value"] for line in drawn["grid"]] == [0, 10, 20, 30, 40]
    assert len([bar for bar in drawn["bars"] if "tick" in bar]) == 8
