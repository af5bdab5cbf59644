"""The staff dashboard, ``/admin/dashboard/`` (linked from the admin index): jobs by status, the RQ
queues and workers, jobs completed and failed per hour over the last 24 hours (an inline SVG drawn
on the server: no script), the failure rate, the pipelines and stages failing most, and the latest
webhook deliveries that failed for good. Staff with the view permission on jobs only.

Every read is a selector bounded by time over an index (``jobs.selectors``, ``webhooks.selectors``):
about ten queries whatever the number of jobs. Works on SQLite (``make run``) as on PostgreSQL."""

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from jobs import selectors
from jobs.admin import STATUS_COLOURS, human_duration
from jobs.models import JobStatus
from pipeline_project.lib.redis import get_redis
from webhooks.selectors import recent_failed_deliveries

WINDOW_HOURS = 24
DELIVERY_FAILURES_SINCE = timedelta(days=7)  # a delivery fails for good about a day after it was created
DELIVERY_FAILURES_SHOWN = 10
REGISTRIES = (("started", StartedJobRegistry), ("scheduled", ScheduledJobRegistry), ("failed", FailedJobRegistry))


def dashboard_view(request):
    if not request.user.has_perm("jobs.view_job"):
        raise PermissionDenied
    now = timezone.now()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=WINDOW_HOURS - 1)
    counts = selectors.dashboard_counts(since=since)
    hours = selectors.hourly_outcomes(since=since, until=now)
    completed, failed = counts[JobStatus.COMPLETED], counts[JobStatus.FAILED]
    oldest = selectors.oldest_queued_age()
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "now": now,
        "since": since,
        "active": [_count(status, counts[status]) for status in selectors.ACTIVE_STATUSES],
        "ended": [_count(status, counts[status]) for status in selectors.ENDED_STATUSES],
        "failure_rate": _percent(failed, completed + failed),
        "chart": chart(hours),
        "queues": queue_state(),
        "oldest_queued": human_duration(oldest) if oldest is not None else None,
        "failing_pipelines": [_pipeline_row(row) for row in selectors.failing_pipelines(since=since)],
        "failing_stages": [_stage_row(row) for row in selectors.failing_stages(since=since)],
        "rq_url": reverse("django_rq:home") if request.user.is_superuser else None,  # superusers_only
    }
    if request.user.has_perm("webhooks.view_webhookdelivery"):
        context["delivery_failures"] = list(
            recent_failed_deliveries(since=now - DELIVERY_FAILURES_SINCE, limit=DELIVERY_FAILURES_SHOWN)
        )
    request.current_app = admin.site.name
    return TemplateResponse(request, "admin/dashboard.html", context)


def _jobs_url(**params) -> str:
    return reverse("admin:jobs_job_changelist") + "?" + urlencode(params)


def _count(status: str, n: int) -> dict:
    return {"status": status, "n": n, "colour": STATUS_COLOURS[status], "url": _jobs_url(status__exact=status)}


def _percent(part: int, whole: int) -> str | None:
    return f"{100 * part / whole:.1f}%" if whole else None


def _pipeline_row(row: dict) -> dict:
    if row["pipeline_id"] is None:
        label, url = "(no pipeline)", _jobs_url(status__exact=JobStatus.FAILED)
    else:
        label = f"{row['name']} v{row['version']}" if row["version"] is not None else row["name"]
        url = _jobs_url(status__exact=JobStatus.FAILED, **(
            {"pipeline_version__id__exact": row["pipeline_version_id"]} if row["pipeline_version_id"] is not None
            else {"pipeline": row["pipeline_id"]}))  # fmt: skip
    return {**row, "label": label, "url": url, "rate": _percent(row["failed"], row["finished"])}


def _stage_row(row: dict) -> dict:
    url = _jobs_url(status__exact=JobStatus.FAILED, **({"error_stage": row["stage"]} if row["stage"] else {}))
    return {**row, "label": row["stage"] or "(no stage)", "url": url}


def queue_state() -> dict:
    """Depths of the RQ queues (and their started, scheduled and failed registries) and the workers
    alive; ``{"error": ...}`` when Redis does not answer (the rest of the page still renders)."""
    try:
        redis = get_redis()
        queues = []
        for name in settings.RQ_QUEUE_NAMES:
            queue = Queue(name, connection=redis)
            queues.append({"name": name, "queued": queue.count, **{
                key: registry(queue=queue).get_job_count(cleanup=False)  # read only: RQ's own upkeep cleans
                for key, registry in REGISTRIES}})  # fmt: skip
        return {"queues": queues, "workers": Worker.count(connection=redis)}
    except RedisError as error:
        return {"error": f"Redis does not answer: {error}"}


# --- The chart -------------------------------------------------------------------------------
# Geometry here, drawing in the template: one stacked bar per hour (completed below, failed above),
# a y axis with four round steps, an hour label every three hours.

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 40
BAR = 0.7  # of an hour's slot
COMPLETED_COLOUR, FAILED_COLOUR = STATUS_COLOURS[JobStatus.COMPLETED], STATUS_COLOURS[JobStatus.FAILED]


def nice_step(peak: int, steps: int = 4) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that reaches ``peak`` in ``steps`` steps."""
    step, factors = 1, (1, 2, 5)
    while True:
        for factor in factors:
            if factor * step * steps >= peak:
                return factor * step
        step *= 10


def chart(hours: list[dict]) -> dict:
    """``hours`` (``hourly_outcomes``) as what the template draws: bars, axes, labels, a summary."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(hours), 1)
    step = nice_step(max((hour["completed"] + hour["failed"] for hour in hours), default=0))
    top_value = step * 4

    def y(value: float) -> float:
        return round(TOP + plot_height - value / top_value * plot_height, 1)

    bars = []
    for index, hour in enumerate(hours):
        start = timezone.localtime(hour["hour"])
        label = f"{start:%H:%M}–{start + timedelta(hours=1):%H:%M}"
        done, failed = hour["completed"], hour["failed"]
        x = round(LEFT + index * slot + slot * (1 - BAR) / 2, 1)
        bar = {"x": x, "width": round(slot * BAR, 1), "label": label, "date": f"{start:%Y-%m-%d}",
               "completed": done, "failed": failed, "rate": _percent(failed, done + failed)}  # fmt: skip
        bar["completed_y"], bar["completed_height"] = y(done), round(y(0) - y(done), 1)
        bar["failed_y"], bar["failed_height"] = y(done + failed), round(y(done) - y(done + failed), 1)
        if index % 3 == 0:
            bar["tick"] = {"x": round(LEFT + index * slot + slot / 2, 1), "text": f"{start:%H:%M}"}
        bars.append(bar)
    completed = sum(hour["completed"] for hour in hours)
    failed = sum(hour["failed"] for hour in hours)
    busiest = max(bars, key=lambda bar: bar["completed"] + bar["failed"], default=None)
    worst = max(bars, key=lambda bar: bar["failed"], default=None)
    summary = [f"{completed} jobs completed and {failed} failed in the last {len(hours)} hours"]
    if completed + failed:
        summary[0] += f" ({_percent(failed, completed + failed)} failed)"
        summary.append(f"busiest hour {busiest['label']} with {busiest['completed'] + busiest['failed']} jobs")
    if failed:
        summary.append(f"most failures {worst['label']} ({worst['failed']})")
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "bottom": y(0),
        "label_y": y(0) + 16,
        "bars": bars,
        "grid": [{"y": y(step * n), "value": step * n} for n in range(5)],
        "completed_colour": COMPLETED_COLOUR,
        "failed_colour": FAILED_COLOUR,
        "summary": "; ".join(summary) + ".",
        "completed": completed,
        "failed": failed,
    }
