"""Staff find failed jobs with the status filter, retry one and cancel a queued one through the
confirmation page, and open the dashboard and its chart (jobs/admin.py, pipeline_project/dashboard.py)."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.roles import Role
from jobs.models import Job, JobStatus
from pipelines.services import default_pipeline_version
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.jobs.factories import JobFactory

CONFIRM = "input[type=submit][value='Yes, I’m sure']"


@pytest.fixture
def jobs(transactional_db):
    org = OrganizationFactory(name="Acme", slug="acme")
    member = MembershipFactory(organization=org, user=UserFactory(username="alice"), role=Role.MEMBER).user
    version = default_pipeline_version(organization=org)
    run = {"pipeline": version.pipeline, "pipeline_version": version, "config": version.config, "created_by": member}
    now = timezone.now()
    return {
        "failed": JobFactory(organization=org, status=JobStatus.FAILED, file_name="broken.pdf", completed_at=now,
                             error={"code": "extraction_failed", "message": "no text layer", "stage": "extract_text"},
                             **run),
        "queued": JobFactory(organization=org, status=JobStatus.QUEUED, file_name="waiting.pdf", **run),
        "completed": JobFactory(organization=org, status=JobStatus.COMPLETED, file_name="done.pdf", completed_at=now,
                                **run),
    }  # fmt: skip


def run_action(page, job: Job, action: str) -> None:
    page.check(f"input[name=_selected_action][value='{job.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_staff_retry_a_failed_job_and_cancel_a_queued_one(staff_page, jobs, shot):
    page = staff_page
    page.goto("/admin/jobs/job/")
    shot(page, "list")
    page.locator("#changelist-filter details[data-filter-title='status']").get_by_role(
        "link", name="failed", exact=False
    ).first.click()
    expect(page).to_have_url(re.compile(r"status__exact=failed"))
    results = page.locator("#result_list")
    expect(results).to_contain_text("broken.pdf")
    expect(results).not_to_contain_text("waiting.pdf")
    shot(page, "failed-only")

    run_action(page, jobs["failed"], "retry_jobs")
    expect(page.locator("ul.action-applies")).to_contain_text("broken.pdf")
    shot(page, "retry-confirmation")
    page.click(CONFIRM)
    expect(page.locator("ul.messagelist")).to_contain_text("Retried 1 job")
    shot(page, "retried")
    retry = Job.objects.get(retried_from=jobs["failed"])
    assert retry.status == JobStatus.QUEUED

    page.goto("/admin/jobs/job/?status__exact=queued")
    run_action(page, jobs["queued"], "cancel_jobs")
    expect(page.locator("ul.action-applies")).to_contain_text("waiting.pdf")
    assert Job.objects.get(pk=jobs["queued"].pk).status == JobStatus.QUEUED  # nothing until confirmed
    shot(page, "cancel-confirmation")
    page.click(CONFIRM)
    expect(page.locator("ul.messagelist")).to_contain_text("Cancelled 1 job")
    shot(page, "cancelled")
    assert Job.objects.get(pk=jobs["queued"].pk).status == JobStatus.CANCELLED
    assert Job.objects.get(pk=retry.pk).status == JobStatus.QUEUED  # only the one selected


def test_staff_see_the_dashboard_chart(staff_page, jobs, shot):
    page = staff_page
    page.goto("/admin/dashboard/")
    chart = page.locator("svg#jobs-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar-completed")).to_have_count(1)
    expect(chart.locator("rect.bar-failed")).to_have_count(1)
    assert chart.locator("rect").first.bounding_box()["height"] > 0
    shot(page, "dashboard")
