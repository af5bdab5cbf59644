"""The jobs back-office in the admin: the list (badges, filters, search, bounded queries), a job's
page (files, result, timeline, deliveries, audit), its result text, and the retry and cancel
actions through their confirmation page, the API's services and the audit trail."""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from audit.models import AuditLog
from audit.services import audit_record
from jobs.models import Job, JobEvent, JobFile, JobResult, JobStatus, Priority
from pipelines.services import default_pipeline_version
from tests.factories import UserFactory
from tests.jobs.factories import JobFactory
from webhooks.models import DeliveryStatus, WebhookDelivery

JOBS = "/admin/jobs/job/"


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True, username="staffer")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def version(org):
    return default_pipeline_version(organization=org)


def make_job(org, *, version=None, member=None, **fields) -> Job:
    if version is not None:
        fields.update(pipeline=version.pipeline, pipeline_version=version, config=version.config)
    return JobFactory(organization=org, created_by=member, **fields)


def completed_job(org, version, *, text="Bonjour le monde", stored=False) -> Job:
    now = timezone.now()
    job = make_job(org, version=version, status=JobStatus.COMPLETED, started_at=now - timedelta(seconds=3),
                   completed_at=now, progress_percent=100, stages_done=4, stages_total=4)  # fmt: skip
    JobFile.objects.create(
        job=job, storage_name="uploads/a/b/c/report.pdf", original_name="report.pdf", size=2048,
        mime_type="application/pdf", sha256="0" * 64, status="completed",
        result={"stages": {"extract_text": {"duration_ms": 120}, "language": {"duration_ms": 7}}},
    )  # fmt: skip
    metadata = {"files": [{"file_id": "f", "name": "report.pdf", "language": {"language": "fr", "confidence": 0.98},
                           "quality": {"chars": len(text), "quality_score": 0.91}}]}  # fmt: skip
    output_uri = markdown_uri = ""
    markdown = f"# {text}"
    if stored:
        output_uri = default_storage.save(f"results/{job.pk}.txt", ContentFile(text.encode()))
        markdown_uri = default_storage.save(f"results/{job.pk}.md", ContentFile(markdown.encode()))
    JobResult.objects.create(job=job, extracted_text="" if stored else text, output_uri=output_uri,
                             markdown="" if stored else markdown, markdown_uri=markdown_uri,
                             text_size=len(text.encode()), result_metadata=metadata, quality_score=0.91,
                             processing_time_ms=3100)  # fmt: skip
    return job


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_badges_pipeline_progress_and_duration(staff_client, org, version):
    done = completed_job(org, version)
    running = make_job(org, version=version, status=JobStatus.PROCESSING, progress_percent=40,
                       progress_stage="extract_text", stages_done=2, stages_total=5,
                       started_at=timezone.now() - timedelta(seconds=90))  # fmt: skip
    failed = make_job(org, status=JobStatus.FAILED, priority=Priority.HIGH)
    page = staff_client.get(JOBS)
    assert page.status_code == 200
    text = page.content.decode()
    for job in (done, running, failed):
        assert f'title="{job.pk}"' in text
    assert 'class="status-badge status-completed"' in text and 'class="status-badge status-failed"' in text
    assert f"{version.pipeline.name} v{version.version}" in text
    assert '<progress max="100" value="40"' in text and "extract_text (2/5)" in text
    assert "3.0 s" in text and "running 1 min" in text
    assert "high" in text and org.name in text
    assert "Retry the selected failed or cancelled jobs" in text and "Cancel the selected jobs" in text
    assert "Delete selected" not in text  # jobs are never deleted here


EVERY_JOB = {"completed", "failed", "high", "other"}
FILTERS = [
    ("status__exact=failed", {"failed"}),
    ("priority__exact=1", {"high"}),
    ("organization__id__exact={other_org}", {"other"}),
    ("pipeline={pipeline}", {"completed"}),
    ("error_stage=extract_text", {"failed"}),
    ("source_type__exact=text", {"other"}),
    ("created_at__gte={yesterday}&created_at__lt={tomorrow}", EVERY_JOB),
    ("created_at__gte={tomorrow}", set()),
    ("created_at__year={year}&created_at__month={month}&created_at__day={day}", EVERY_JOB),
    ("created_at__year=2001", set()),
    ("status__exact=failed&organization__id__exact={org}", {"failed"}),
    ("q={completed_id}", {"completed"}),
    ("q={completed_short_id}", {"completed"}),  # the id as the list shows it
    ("q=quarterly", {"failed"}),
    ("q=Globex", {"other"}),
    ("q=globex", {"other"}),
]


def test_each_filter_and_search_narrows_the_list(staff_client, org, other_org, version):
    jobs = {
        "completed": completed_job(org, version),
        "failed": make_job(org, status=JobStatus.FAILED, file_name="quarterly.pdf",
                           error={"code": "parse_error", "message": "bad", "stage": "extract_text"}),
        "high": make_job(org, priority=Priority.HIGH),
        "other": make_job(other_org, source_type="text"),
    }  # fmt: skip
    today = timezone.localdate()
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    values = {"org": org.pk, "other_org": other_org.pk, "pipeline": version.pipeline.pk, "year": today.year,
              "month": today.month, "day": today.day, "yesterday": quote(str(midnight - timedelta(days=1))),
              "tomorrow": quote(str(midnight + timedelta(days=1))), "completed_id": jobs["completed"].pk,
              "completed_short_id": str(jobs["completed"].pk)[:8].upper()}  # fmt: skip
    for query, expected in FILTERS:
        page = staff_client.get(f"{JOBS}?{query.format(**values)}")
        assert page.status_code == 200, query  # not the "?e=1" redirect of a refused filter
        text = page.content.decode()
        assert {name for name, job in jobs.items() if f'title="{job.pk}"' in text} == expected, query


@pytest.mark.parametrize("query", [
    "pipeline=not-a-uuid", "created_at__year=9999", "created_at__year=9999&created_at__month=12&created_at__day=31",
    "created_at__year=99999999999999999999", "created_at__year=0", "created_at__year=2026&created_at__month=13",
    "created_at__year=2026&created_at__month=2&created_at__day=30", "created_at__year=x",
])  # fmt: skip
def test_a_malformed_filter_gets_the_admin_s_error_page_not_a_500(staff_client, version, query):
    response = staff_client.get(f"{JOBS}?{query}")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


@pytest.mark.parametrize(
    "query", ["created_at__month=5", "created_at__day=3", "created_at__month=5&created_at__day=99"]
)
def test_a_drill_down_without_its_year_is_no_error_either(staff_client, version, query):
    assert staff_client.get(f"{JOBS}?{query}").status_code in (200, 302)


def test_the_filters_and_date_drill_down_are_offered(staff_client, org, other_org, version):
    default_pipeline_version(organization=other_org)  # a filter with one choice is not offered
    text = staff_client.get(JOBS).content.decode()
    for title in ("By status", "By priority", "By organization", "By pipeline", "By failed stage", "By created at"):
        assert title in text
    assert f"{org.name} / {version.pipeline.name}" in text  # pipelines named by organization
    year = timezone.localdate().year
    assert f'href="?created_at__year={year}"' in text  # the calendar, read from no row
    by_year = staff_client.get(f"{JOBS}?created_at__year={year}&status__exact=failed").content.decode()
    january = re.search(r'<a href="([^"]*created_at__month=1(?:&|")[^"]*)"', by_year)[1]
    assert "status__exact=failed" in january  # the other filters are kept
    assert re.search(r'<a href="\?status__exact=failed" class="date-back">', by_year)


def test_the_list_reads_a_bounded_number_of_rows(staff_client, org, other_org, version, django_assert_num_queries):
    for index in range(30):
        make_job(org if index % 2 else other_org, version=version, status=JobStatus.FAILED)
    # session, user, capped count, the page of jobs (with organization, pipeline and version
    # joined), the organizations and the pipelines filters: whatever the number of jobs.
    with django_assert_num_queries(6):
        assert staff_client.get(JOBS).status_code == 200
    with django_assert_num_queries(6):
        assert staff_client.get(f"{JOBS}?status__exact=failed&created_at__year=2026").status_code == 200
    with django_assert_num_queries(6):  # no count per filter choice either
        page = staff_client.get(f"{JOBS}?_facets=True")
    assert "Show counts" not in page.content.decode()


# --- A job's page ---------------------------------------------------------------------------


def test_a_jobs_page_shows_files_result_timeline_deliveries_and_audit(staff_client, org, version):
    job = completed_job(org, version)
    retry_source = make_job(org, status=JobStatus.FAILED, error={"code": "fetch_failed", "message": "404 Not Found",
                                                                 "stage": "fetch"}, attempts=3)  # fmt: skip
    Job.objects.filter(pk=job.pk).update(retried_from=retry_source)
    JobEvent.objects.create(job=job, from_status="processing", to_status="completed", actor="system",
                            message="completed")  # fmt: skip
    delivery = WebhookDelivery.objects.create(
        organization=org, url="https://hooks.example.com/in", event_type="job.completed", message_id="msg_1",
        payload={"type": "job.completed", "timestamp": "x", "data": {"id": str(job.pk), "status": "completed"}},
        status=DeliveryStatus.FAILED, attempts=8, response_status=500,
    )  # fmt: skip
    WebhookDelivery.objects.create(organization=org, url="https://elsewhere.example.com/", event_type="job.completed",
                                   message_id="msg_2", payload={"type": "job.completed",
                                                                "data": {"id": "other"}})  # fmt: skip
    record = audit_record(action="jobs.retrieve", actor_kind="user", organization_id=org.pk, resource_type="job",
                          resource_id=str(job.pk), username="member")  # fmt: skip
    page = staff_client.get(f"{JOBS}{job.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "report.pdf" in text and "application/pdf" in text  # the files inline
    assert f"/admin/jobs/job/{job.pk}/result-text/" in text and f"/admin/jobs/job/{job.pk}/result-markdown/" in text
    assert "fr (0.98)" in text and "0.910" in text and "extract_text&nbsp;120&nbsp;ms" in text
    assert f"{len('Bonjour le monde')} characters" in text
    assert 'id="job-events"' in text and "processing" in text
    assert f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/" in text and "elsewhere.example.com" not in text
    assert f"/admin/audit/auditlog/{record.pk}/change/" in text
    audit_url = (
        f"/admin/audit/auditlog/?organization__id__exact={org.pk}&amp;resource_type=job&amp;resource_id={job.pk}"
    )
    assert audit_url in text
    assert f"/admin/jobs/job/{retry_source.pk}/change/" in text  # retried from
    assert 'name="_save"' not in text  # nothing to save: jobs change through their actions

    failed = staff_client.get(f"{JOBS}{retry_source.pk}/change/").content.decode()
    assert "fetch_failed" in failed and "404 Not Found" in failed and "3 / 3" in failed
    assert f"/admin/jobs/job/{job.pk}/change/" in failed  # its retries
    assert 'class="job-retry"' in failed and 'class="job-cancel"' not in failed
    # The audit trail link is accepted by the audit list (its filters are no "?e=1" redirect).
    assert staff_client.get(audit_url.replace("&amp;", "&")).status_code == 200


def test_a_long_timeline_shows_its_end_with_a_link_to_all_of_it(staff_client, org, django_assert_max_num_queries):
    job = make_job(org, status=JobStatus.PROCESSING)
    JobEvent.objects.bulk_create(
        JobEvent(job=job, from_status="processing", to_status="processing", actor="system", message=f"step {n}")
        for n in range(120)
    )
    with django_assert_max_num_queries(14):
        text = staff_client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert "step 119" in text and "step 70" in text and "step 69" not in text
    events_url = f"/admin/jobs/jobevent/?job__id__exact={job.pk}"
    assert events_url in text
    all_events = staff_client.get(events_url)
    assert all_events.status_code == 200 and "step 0" in all_events.content.decode()


# --- The result text ------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [False, True])
def test_staff_read_the_result_text_inline_or_stored(staff_client, org, version, stored):
    job = completed_job(org, version, text="Grüße aus Köln", stored=stored)
    response = staff_client.get(f"{JOBS}{job.pk}/result-text/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.decode() == "Grüße aus Köln"
    record = AuditLog.objects.get(action="admin.jobs.result_text")
    assert (record.actor_kind, record.resource_id, record.username) == ("staff", str(job.pk), "staffer")
    markdown = staff_client.get(f"{JOBS}{job.pk}/result-markdown/")
    assert markdown["Content-Type"] == "text/markdown; charset=utf-8"
    body = b"".join(markdown.streaming_content) if markdown.streaming else markdown.content
    assert body.decode() == "# Grüße aus Köln"
    assert AuditLog.objects.filter(action="admin.jobs.result_markdown", resource_id=str(job.pk)).exists()


def test_the_result_text_of_a_job_without_one_says_why(staff_client, org):
    job = make_job(org, status=JobStatus.FAILED)
    response = staff_client.get(f"{JOBS}{job.pk}/result-text/")
    assert response.status_code == 409 and b"failed" in response.content
    assert staff_client.get(f"{JOBS}00000000-0000-0000-0000-000000000000/result-text/").status_code == 404


def test_only_staff_read_jobs(client, org, version, member):
    job = completed_job(org, version)
    client.force_login(member)  # a logged-in member of the organization, not staff
    for url in (JOBS, f"{JOBS}{job.pk}/change/", f"{JOBS}{job.pk}/result-text/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(UserFactory(is_staff=True))  # staff without the view permission on jobs
    assert client.get(f"{JOBS}{job.pk}/result-text/").status_code == 403
    assert client.get(JOBS).status_code == 403


# --- Retry and cancel -----------------------------------------------------------------------


def post_action(client, action: str, jobs, *, follow=False, **extra):
    data = {"action": action, "_selected_action": [str(job.pk) for job in jobs], **extra}
    return client.post(JOBS, data, follow=follow)


def test_retry_asks_first_then_retries_through_the_service(staff_client, staff, org, member, version, rq_queue,
                                                           django_capture_on_commit_callbacks):  # fmt: skip
    failed = make_job(org, version=version, member=member, status=JobStatus.FAILED, file_name="a.pdf")
    cancelled = make_job(org, member=member, status=JobStatus.CANCELLED)
    done = completed_job(org, version)
    orphan = make_job(org, status=JobStatus.FAILED)  # its creator's account is gone
    outsider = UserFactory(username="gone")
    former = make_job(org, member=outsider, status=JobStatus.FAILED)  # never (or no longer) a member

    page = post_action(staff_client, "retry_jobs", [failed, cancelled, done, orphan, former])
    assert page.status_code == 200
    text = page.content.decode()
    applies = re.search(r'<ul class="action-applies">(.*?)</ul>', text, re.S)[1]
    skipped = re.search(r'<ul class="action-skipped">(.*?)</ul>', text, re.S)[1]
    assert str(failed.pk) in applies and str(cancelled.pk) in applies and str(done.pk) not in applies
    assert "only failed or cancelled jobs can be retried" in skipped
    assert "creator&#x27;s account was deleted" in skipped
    assert "(gone) is no longer a member of Acme" in skipped
    assert 'name="post" value="yes"' in text
    assert Job.objects.count() == 5  # nothing done yet

    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(staff_client, "retry_jobs", [failed, cancelled, done, orphan, former], post="yes",
                               follow=True)  # fmt: skip
    assert response.status_code == 200
    assert messages_of(response)[0] == "Retried 2 jobs."
    assert messages_of(response)[1].startswith("Skipped 3:")
    retries = {job.retried_from_id: job for job in Job.objects.filter(retried_from__isnull=False)}
    assert set(retries) == {failed.pk, cancelled.pk}
    retry = retries[failed.pk]
    assert retry.status == JobStatus.QUEUED and retry.created_by == member and retry.organization == org
    assert retry.pipeline_version == version
    event = retry.events.get()
    assert event.actor == f"staff:{staff.pk}" and event.message == f"retry of {failed.pk}"
    assert sorted(rq_queue("default")) == sorted(str(job.pk) for job in retries.values())
    records = AuditLog.objects.filter(action="admin.jobs.retry")
    assert {record.resource_id for record in records} == {str(failed.pk), str(cancelled.pk)}
    record = records.get(resource_id=str(failed.pk))
    assert (record.actor_kind, record.username, record.organization_id) == ("staff", "staffer", org.pk)
    assert record.request_details == {"retry_id": str(retry.pk), "on_behalf_of": "member"}


def test_retry_skips_a_creator_who_may_not_retry_any_more(staff_client, org, member):
    job = make_job(org, member=member, status=JobStatus.FAILED)
    Membership.objects.filter(user=member).update(role="viewer")
    text = post_action(staff_client, "retry_jobs", [job]).content.decode()
    assert "(member) is a viewer now and may not retry jobs" in text
    assert "None of the selected jobs can be retried." in text


def test_cancel_asks_first_then_cancels_through_the_service(staff_client, staff, org, version, rq_queue,
                                                            django_capture_on_commit_callbacks):  # fmt: skip
    queued = make_job(org, status=JobStatus.QUEUED)
    draft = make_job(org, status=JobStatus.DRAFT)
    processing = make_job(org, status=JobStatus.PROCESSING)
    done = completed_job(org, version)
    selected = [queued, draft, processing, done]

    text = post_action(staff_client, "cancel_jobs", selected).content.decode()
    applies = re.search(r'<ul class="action-applies">(.*?)</ul>', text, re.S)[1]
    skipped = re.search(r'<ul class="action-skipped">(.*?)</ul>', text, re.S)[1]
    assert all(str(job.pk) in applies for job in (queued, draft, processing))
    assert str(done.pk) in skipped and "it is completed" in skipped
    assert Job.objects.get(pk=queued.pk).status == JobStatus.QUEUED

    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(staff_client, "cancel_jobs", selected, post="yes", follow=True)
    assert messages_of(response) == [
        "Cancelled 3 jobs.", f"Skipped 1: {done}: it is completed; only draft, queued or processing jobs can be "
        "cancelled.",
    ]  # fmt: skip
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses[queued.pk] == statuses[draft.pk] == JobStatus.CANCELLED
    assert statuses[processing.pk] == JobStatus.CANCELLING and statuses[done.pk] == JobStatus.COMPLETED
    assert queued.events.latest("id").actor == f"staff:{staff.pk}"
    records = AuditLog.objects.filter(action="admin.jobs.cancel", actor_kind="staff")
    assert {record.resource_id for record in records} == {str(job.pk) for job in (queued, draft, processing)}
    assert records.get(resource_id=str(processing.pk)).request_details == {"status": "cancelling"}


def test_staff_who_may_only_view_jobs_get_no_actions(client, org):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    job = make_job(org, status=JobStatus.QUEUED)
    text = client.get(JOBS).content.decode()
    assert 'title="' + str(job.pk) in text and "cancel_jobs" not in text
    assert 'class="job-cancel"' not in client.get(f"{JOBS}{job.pk}/change/").content.decode()
    post_action(client, "cancel_jobs", [job], post="yes")
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert not AuditLog.objects.filter(action="admin.jobs.cancel").exists()


def test_actions_need_the_csrf_token(staff, org):
    job = make_job(org, status=JobStatus.QUEUED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = post_action(client, "cancel_jobs", [job], post="yes")
    assert response.status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    page = client.get(f"{JOBS}{job.pk}/change/")  # its page's cancel button carries the token
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    confirm = post_action(client, "cancel_jobs", [job], csrfmiddlewaretoken=token)
    assert confirm.status_code == 200 and 'name="post" value="yes"' in confirm.content.decode()


def test_jobs_are_never_added_edited_or_deleted_here(staff_client, org):
    job = make_job(org, status=JobStatus.FAILED)
    assert staff_client.post(f"{JOBS}{job.pk}/change/", {"status": "queued"}).status_code == 403
    assert staff_client.get(f"{JOBS}add/").status_code == 403
    assert staff_client.post(f"{JOBS}{job.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
