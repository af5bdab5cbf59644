"""Staff views of jobs (the back-office, as django-rq's and Sidekiq's job pages): the list with
status badges, filters and search; a job's page with its files, result, timeline, attempts,
webhook deliveries and audit trail; its result text; and the retry and cancel actions. Jobs change
only through the API's services (the state machine): the actions call them behind a confirmation
page, each audited as a staff action in the service's transaction. Nothing is added, edited or
deleted here.

Built for millions of jobs: the list never counts past ``PAGINATION_EXACT_COUNT_LIMIT`` rows (then
the planner's estimate), its date drill-down reads no rows, and a job's page reads a bounded slice
of each of its histories with a link to the rest."""

import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join

from accounts.models import Membership
from accounts.principal import Principal
from accounts.roles import JOBS_RETRY, ROLE_PERMISSIONS
from audit.models import AuditLog
from audit.services import audit_staff_action
from jobs import selectors, services
from jobs.models import Job, JobEvent, JobFile, JobResult, JobStatus
from pipeline_project.lib.admin import (
    EstimatedCountPaginator,
    LargeTableAdmin,
    ReadOnlyAdmin,
    confirmed_action,
    status_badge,
)
from pipeline_project.lib.errors import ApplicationError
from pipeline_project.lib.storage import text_response
from pipelines.models import Pipeline
from pipelines.stages import REGISTRY
from webhooks.selectors import job_deliveries

# Status -> badge colour (white text reads on each, in the light and the dark theme).
STATUS_COLOURS = {
    JobStatus.DRAFT: "#616161",
    JobStatus.QUEUED: "#1565c0",
    JobStatus.PROCESSING: "#6a1b9a",
    JobStatus.CANCELLING: "#8d6e00",
    JobStatus.COMPLETED: "#2e7d32",
    JobStatus.FAILED: "#b3261e",
    JobStatus.CANCELLED: "#5d4037",
}
EVENTS_SHOWN = 50  # a job's page shows its last timeline entries, with a link to all of them
DELIVERIES_SHOWN = 20
AUDIT_SHOWN = 10
RETRIES_SHOWN = 20


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def staff_actor(request) -> str:
    """How a job's timeline names a staff user acting in the admin."""
    return f"staff:{request.user.pk}"


# --- Filters ---------------------------------------------------------------------------------


class PipelineFilter(admin.SimpleListFilter):
    """Pipelines by organization and name (every organization has one named "default"); only the
    selected organization's when one is."""

    title = "pipeline"
    parameter_name = "pipeline"
    LISTED = 200

    def lookups(self, request, model_admin):
        pipelines = Pipeline.objects.select_related("organization").order_by("organization__name", "name")
        organization = request.GET.get("organization__id__exact")
        if organization:
            try:
                pipelines = pipelines.filter(organization_id=Pipeline._meta.pk.to_python(organization))
            except ValidationError:
                return []
        return [(str(pipeline.pk), pipeline.name if organization else f"{pipeline.organization.name} / {pipeline.name}")
                for pipeline in pipelines[: self.LISTED]]  # fmt: skip

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            return queryset.filter(pipeline_id=Pipeline._meta.pk.to_python(self.value()))
        except ValidationError as exc:
            raise IncorrectLookupParameters(exc) from exc


class FailedStageFilter(admin.SimpleListFilter):
    """The stage a job failed in (its ``error.stage``), from the stage registry."""

    title = "failed stage"
    parameter_name = "error_stage"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(REGISTRY)]

    def queryset(self, request, queryset):
        return queryset.filter(error__stage=self.value()) if self.value() else queryset


# --- Inlines ---------------------------------------------------------------------------------


class JobFileInline(admin.TabularInline):
    """A job's documents (at most JOB_MAX_FILES)."""

    model = JobFile
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ["original_name", "mime_type", "size_display", "status", "processing_status", "error", "completed_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="size")
    def size_display(self, job_file: JobFile):
        return formats.localize(job_file.size) + " B" if job_file.size is not None else "-"


# --- Jobs ------------------------------------------------------------------------------------


@admin.register(Job)
class JobAdmin(LargeTableAdmin, ReadOnlyAdmin):
    list_display = ["short_id", "status_display", "priority_display", "organization", "pipeline_display",
                    "file_name", "progress_display", "created_at", "duration_display"]  # fmt: skip
    list_display_links = ["short_id"]
    list_filter = ["status", "priority", "organization", PipelineFilter, FailedStageFilter, "source_type", "created_at"]
    search_fields = ["file_name", "organization__name", "=organization__slug"]
    search_by_id = True
    list_select_related = ["organization", "pipeline", "pipeline_version"]
    sortable_by = ["created_at"]  # the one order an index serves over millions of jobs
    list_per_page = 50
    date_hierarchy = "created_at"  # drawn without reading rows (LargeTableAdmin)
    actions = ["retry_jobs", "cancel_jobs"]
    inlines = [JobFileInline]
    fieldsets = [
        (None, {"fields": ["id", "status_display", "organization", "created_by", "created_by_key", "source_type",
                           "source_uri", "file_name", "file_size", "mime_type", "mode", "priority_display",
                           "pipeline", "pipeline_version", "webhook_url", "metadata_display"]}),
        ("Progress and timing", {"fields": ["progress_display", "created_at", "started_at", "completed_at",
                                            "duration_display", "updated_at", "locked_by", "heartbeat_at"]}),
        ("Attempts and errors", {"fields": ["attempts_display", "error_code", "error_message", "error_stage",
                                            "retried_from", "retries_display"]}),
        ("Result", {"fields": ["result_display"]}),
        ("Configuration", {"classes": ["collapse"], "fields": ["config_display", "idempotency_key", "request_hash"]}),
    ]  # fmt: skip
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    # --- The list ---

    @admin.display(description="id")
    def short_id(self, job: Job):
        return format_html('<code title="{}">{}</code>', job.pk, str(job.pk)[:8])

    @admin.display(description="status", ordering="status")
    def status_display(self, job: Job):
        return status_badge(job.status, STATUS_COLOURS)

    @admin.display(description="priority", ordering="priority")
    def priority_display(self, job: Job):
        return job.get_priority_display()

    @admin.display(description="pipeline")
    def pipeline_display(self, job: Job):
        if job.pipeline is None:
            return "-"
        return f"{job.pipeline.name} v{job.pipeline_version.version}" if job.pipeline_version else job.pipeline.name

    @admin.display(description="progress")
    def progress_display(self, job: Job):
        if job.status in (JobStatus.DRAFT, JobStatus.QUEUED) and not job.progress_percent:
            return "-"
        stage = f" {job.progress_stage}" if job.progress_stage else ""
        stages = f" ({job.stages_done}/{job.stages_total})" if job.stages_total else ""
        return format_html('<progress max="100" value="{}" style="width:5em"></progress> {}%{}{}',
                           job.progress_percent, job.progress_percent, stage, stages)  # fmt: skip

    @admin.display(description="duration")
    def duration_display(self, job: Job):
        if job.started_at is None:
            return "-"
        if job.completed_at is None:
            return f"running {human_duration((timezone.now() - job.started_at).total_seconds())}"
        return human_duration((job.completed_at - job.started_at).total_seconds())

    # --- A job's page ---

    def get_object(self, request, object_id, from_field=None):
        related = ["organization", "created_by", "created_by_key", "pipeline", "pipeline_version", "retried_from"]
        # The result's text and Markdown (up to RESULT_INLINE_MAX_SIZE each) are left out: result_view serves them.
        queryset = self.get_queryset(request).select_related(*related, "result")
        queryset = queryset.defer("result__extracted_text", "result__markdown")
        try:
            return queryset.get(pk=Job._meta.pk.to_python(object_id))
        except (Job.DoesNotExist, ValidationError):
            return None

    @admin.display(description="metadata")
    def metadata_display(self, job: Job):
        return _json_block(job.metadata) if job.metadata else "-"

    @admin.display(description="config")
    def config_display(self, job: Job):
        return _json_block(job.config)

    @admin.display(description="attempts")
    def attempts_display(self, job: Job):
        return f"{job.attempts} / {job.max_attempts}"

    @admin.display(description="error code")
    def error_code(self, job: Job):
        return (job.error or {}).get("code") or "-"

    @admin.display(description="error message")
    def error_message(self, job: Job):
        return (job.error or {}).get("message") or "-"

    @admin.display(description="failed stage")
    def error_stage(self, job: Job):
        return (job.error or {}).get("stage") or "-"

    @admin.display(description="retries")
    def retries_display(self, job: Job):
        retries = list(job.retries.order_by("-created_at").only("id", "status", "file_name", "source_type",
                                                                 "created_at")[: RETRIES_SHOWN + 1])  # fmt: skip
        if not retries:
            return "-"
        items = format_html_join(
            "", '<li><a href="{}">{}</a> {} {}</li>',
            ((_change_url(retry), str(retry.pk)[:8], status_badge(retry.status, STATUS_COLOURS),
              formats.localize(timezone.localtime(retry.created_at))) for retry in retries[:RETRIES_SHOWN]),
        )  # fmt: skip
        more = format_html("<li>and more</li>") if len(retries) > RETRIES_SHOWN else ""
        return format_html('<ul class="job-retries" style="margin:0;padding-left:1.2em">{}{}</ul>', items, more)

    @admin.display(description="result")
    def result_display(self, job: Job):
        if job.status != JobStatus.COMPLETED:
            return f"None: the job is {job.status}."
        try:
            result = job.result
        except JobResult.DoesNotExist:
            return "Expired: deleted after RESULT_RETENTION (retry the job to produce it again)."
        return _result_summary(job, result)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)  # read only
        if obj is not None:
            context["title"] = "View job"
            context.update(self._histories(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _histories(self, request, job: Job) -> dict:
        """What the page shows below the job's fields: bounded slices, each with a link to the rest."""
        events = list(selectors.job_events(job=job).order_by("-id")[: EVENTS_SHOWN + 1])
        context = {
            "events": events[:EVENTS_SHOWN][::-1],
            "events_more": len(events) > EVENTS_SHOWN,
            "events_url": reverse("admin:jobs_jobevent_changelist") + f"?job__id__exact={job.pk}",
            "can_manage": self.has_manage_permission(request),
            "can_retry": job.can_retry(),
            "can_cancel": job.can_cancel(),
        }
        if request.user.has_perm("webhooks.view_webhookdelivery"):
            deliveries = list(job_deliveries(job=job, limit=DELIVERIES_SHOWN + 1))
            context["deliveries"] = deliveries[:DELIVERIES_SHOWN]
            context["deliveries_more"] = len(deliveries) > DELIVERIES_SHOWN
            context["deliveries_url"] = reverse("admin:webhooks_webhookdelivery_changelist") + (
                f"?organization__id__exact={job.organization_id}&payload__data__id={job.pk}"
            )
        if request.user.has_perm("audit.view_auditlog"):
            context["audit_entries"] = list(
                AuditLog.objects.filter(organization_id=job.organization_id, resource_type="job",
                                        resource_id=str(job.pk)).order_by("-timestamp", "-id")[:AUDIT_SHOWN]
            )  # fmt: skip
            context["audit_url"] = reverse("admin:audit_auditlog_changelist") + (
                f"?organization__id__exact={job.organization_id}&resource_type=job&resource_id={job.pk}"
            )
        return context

    # --- The result text ---

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            *(
                path(
                    f"<path:object_id>/result-{kind}/",
                    self.admin_site.admin_view(self.result_view),
                    {"kind": kind},
                    name="{}_{}_result_{}".format(*info, kind),
                )
                for kind in JobResult.RENDERINGS
            ),
            *super().get_urls(),
        ]

    def result_view(self, request, object_id, kind="text"):
        """A completed job's text as text/plain (or its Markdown as text/markdown), as ``GET
        /jobs/{id}/result/text`` (``/markdown``) serves it (a presigned redirect on S3); staff
        reading a document is audited."""
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404("No such job.")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        try:
            result = selectors.job_result(job=job)
        except ApplicationError as error:
            return HttpResponse(error.message, status=error.status_code, content_type="text/plain; charset=utf-8")
        audit_staff_action(request=request, action=f"admin.jobs.result_{kind}", obj=job,
                           details={"text_size": result.text_size})  # fmt: skip
        response = text_response(result, *JobResult.RENDERINGS[kind])
        response["X-Content-Type-Options"] = "nosniff"
        return response

    # --- Actions ---

    @admin.action(description="Retry the selected failed or cancelled jobs", permissions=["manage"])
    def retry_jobs(self, request, queryset):
        queryset = queryset.select_related("organization", "created_by")
        roles = creator_roles(queryset)

        def skip_reason(job: Job) -> str | None:
            if not job.can_retry():
                return f"it is {job.status}; only failed or cancelled jobs can be retried"
            return creator_principal(job, roles)[1]

        def perform(job: Job) -> None:
            principal = creator_principal(job, roles)[0]
            retry = services.job_retry(job=job, principal=principal, overrides={}, actor=staff_actor(request))
            details = {"retry_id": str(retry.pk), "on_behalf_of": principal.user.get_username()}
            audit_staff_action(request=request, action="admin.jobs.retry", obj=job, details=details)

        return confirmed_action(
            self, request, queryset, title="Retry jobs", verb="retry", past="retried",
            note="Each is retried as a new queued job with the same input and configuration, on behalf of "
                 "the user who created it; the original stays as it ended.",
            skip_reason=skip_reason, perform=perform,
        )  # fmt: skip

    @admin.action(description="Cancel the selected jobs", permissions=["manage"])
    def cancel_jobs(self, request, queryset):
        def skip_reason(job: Job) -> str | None:
            if job.can_cancel():
                return None
            return f"it is {job.status}; only draft, queued or processing jobs can be cancelled"

        def perform(job: Job) -> None:
            cancelled = services.job_cancel(job=job, actor=staff_actor(request))
            audit_staff_action(request=request, action="admin.jobs.cancel", obj=job,
                               details={"status": cancelled.status})  # fmt: skip

        return confirmed_action(
            self, request, queryset.select_related("organization"), title="Cancel jobs", verb="cancel",
            past="cancelled",
            note="Draft and queued jobs are cancelled at once; a processing job becomes cancelling and its worker "
                 "stops it, discarding partial results. Cancelling cannot be undone; a cancelled job can be "
                 "retried as a new one.",
            skip_reason=skip_reason, perform=perform,
        )  # fmt: skip


def creator_roles(queryset) -> dict[tuple, str]:
    """``{(organization id, user id): role}`` of the creators of the jobs in ``queryset``, one query."""
    memberships = Membership.objects.filter(
        user_id__in=queryset.order_by().values("created_by_id"),
        organization_id__in=queryset.order_by().values("organization_id"),
    ).values_list("organization_id", "user_id", "role")
    return {(organization_id, user_id): role for organization_id, user_id, role in memberships}


def creator_principal(job: Job, roles: dict) -> tuple[Principal | None, str | None]:
    """Who a staff retry of ``job`` acts for: its creator, in its organization, with their role
    today (as the API would see them); or None and why not."""
    user = job.created_by
    if user is None:
        return None, "its creator's account was deleted"
    if not user.is_active:
        return None, f"its creator ({user.get_username()}) is deactivated"
    role = roles.get((job.organization_id, user.pk))
    if role is None:
        return None, f"its creator ({user.get_username()}) is no longer a member of {job.organization.name}"
    permissions = ROLE_PERMISSIONS[role]
    if JOBS_RETRY not in permissions:
        return None, f"its creator ({user.get_username()}) is a {role} now and may not retry jobs"
    return Principal(user=user, organization=job.organization, role=role, permissions=permissions), None


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    """Every job's timeline, newest first: reached from a job's page (``?job__id__exact=``), hidden
    from the index (all jobs' events together tell little)."""

    list_display = ["created_at", "job_link", "from_status", "to_status", "actor", "message"]
    list_select_related = ["job"]
    ordering = ["-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 200
    actions = None

    def get_model_perms(self, request):
        return {}

    @admin.display(description="job")
    def job_link(self, event: JobEvent):
        return format_html('<a href="{}">{}</a>', _change_url(event.job), event.job)


# --- Helpers ---------------------------------------------------------------------------------


def _change_url(job: Job) -> str:
    return reverse("admin:jobs_job_change", args=[job.pk])


def _json_block(value) -> str:
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', json.dumps(value, indent=2))


def _result_summary(job: Job, result: JobResult):
    """Size, language, quality, timings per stage and a link to the text."""
    files = result.result_metadata.get("files") or []
    chars = [entry["quality"]["chars"] for entry in files if isinstance(entry.get("quality"), dict)
             and "chars" in entry["quality"]]  # fmt: skip
    languages = [
        f"{entry['language'].get('language') or 'unknown'} ({entry['language'].get('confidence', 0):.2f})"
        for entry in files
        if isinstance(entry.get("language"), dict)
    ]
    rows = [
        ("Text", format_html('{} B{} &middot; <a href="{}" class="result-text-link">view the text</a> &middot; '
                             '<a href="{}" class="result-markdown-link">as Markdown</a>',
                             formats.localize(result.text_size),
                             f", {formats.localize(sum(chars))} characters" if chars else "",
                             reverse("admin:jobs_job_result_text", args=[job.pk]),
                             reverse("admin:jobs_job_result_markdown", args=[job.pk]))),
        ("Stored", "in storage: " + result.output_uri if result.output_uri else "inline (in the database)"),
        ("Language", ", ".join(languages) or "-"),
        ("Quality score", f"{result.quality_score:.3f}" if result.quality_score is not None else "-"),
        ("Processing time", human_duration(result.processing_time_ms / 1000)),
        ("Stage timings", _stage_timings(job) or "-"),
        ("Documents", len(files)),
        ("Cache", "copied from job " + result.result_metadata["cache"]["source_job"]
         if (result.result_metadata.get("cache") or {}).get("hit") else "computed"),
        ("Expires", formats.localize(timezone.localtime(result.expires_at)) if result.expires_at else "never"),
    ]  # fmt: skip
    return format_html(
        '<table class="result-summary"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
    )


def _stage_timings(job: Job):
    """Milliseconds per stage, summed over the job's documents (their ``result.stages``)."""
    totals: dict[str, int] = {}
    for record in job.files.values_list("result", flat=True):
        for name, stage in ((record or {}).get("stages") or {}).items():
            if isinstance(stage, dict) and isinstance(stage.get("duration_ms"), int):
                totals[name] = totals.get(name, 0) + stage["duration_ms"]
    if not totals:
        return ""
    return format_html_join(", ", "{}&nbsp;{}&nbsp;ms", ((name, formats.localize(ms)) for name, ms in totals.items()))
