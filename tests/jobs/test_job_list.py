from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus, Priority
from tests.jobs.factories import JobFactory

JOBS = "/api/v1/jobs"


@pytest.fixture
def jobs(org):
    now = timezone.now()
    made = [
        JobFactory(organization=org, status=JobStatus.FAILED, priority=Priority.LOW, file_name="b-report.pdf",
                   metadata={"customer": "initech"}),
        JobFactory(organization=org, status=JobStatus.QUEUED, priority=Priority.HIGH, file_name="a-invoice.pdf"),
        JobFactory(organization=org, status=JobStatus.CANCELLED, priority=Priority.NORMAL, file_name="c-notes.txt",
                   source_type="text", source_uri=""),
    ]  # fmt: skip
    for age, job in enumerate(made):  # newest first: made[2], made[1], made[0]
        Job.objects.filter(pk=job.pk).update(created_at=now - timedelta(minutes=3 - age))
    JobFactory()  # another organization's
    return made


def ids(response):
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_it_lists_the_organizations_jobs_newest_first(as_viewer, jobs):
    body = as_viewer.get(JOBS).json()
    assert [item["id"] for item in body["items"]] == [str(jobs[2].id), str(jobs[1].id), str(jobs[0].id)]
    assert body["total"] == 3 and body["page"] == 1 and body["page_size"] == 20


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=failed", [0]),
        ("status=failed,cancelled", [2, 0]),
        ("status=queued,failed", [1, 0]),
        ("source_type=text", [2]),
        ("priority=high", [1]),
        ("search=invoice", [1]),
        ("search=INITECH", [0]),
        ("sort_by=priority&sort_order=asc", [1, 2, 0]),
        ("sort_by=file_name&sort_order=asc", [1, 0, 2]),
        ("sort_by=status&sort_order=desc", [1, 0, 2]),
    ],
)
def test_it_filters_searches_and_sorts(as_viewer, jobs, query, expected):
    assert ids(as_viewer.get(f"{JOBS}?{query}")) == [str(jobs[i].id) for i in expected]


def test_it_finds_a_job_by_id_prefix(as_viewer, jobs):
    assert ids(as_viewer.get(f"{JOBS}?search={str(jobs[1].id)[:8]}")) == [str(jobs[1].id)]


def test_it_filters_by_creation_time(as_viewer, jobs):
    middle = Job.objects.get(pk=jobs[1].pk).created_at
    after = as_viewer.get(JOBS, {"created_after": middle.isoformat()})
    before = as_viewer.get(JOBS, {"created_before": middle.isoformat()})
    assert ids(after) == [str(jobs[2].id), str(jobs[1].id)]
    assert ids(before) == [str(jobs[0].id)]


@pytest.mark.parametrize(
    "query, field",
    [("status=done", "status"), ("priority=urgent", "priority"), ("sort_by=secret", "sort_by"),
     ("sort_order=up", "sort_order"), ("created_after=yesterday", "created_after"), ("page=-1", "page"),
     ("cursor=garbage!", "cursor")],
)  # fmt: skip
def test_it_refuses_bad_parameters_with_400(as_viewer, jobs, query, field):
    response = as_viewer.get(f"{JOBS}?{query}")
    assert response.status_code == 400 and field in response.json()["error"]["details"]


def test_it_pages_with_links(as_viewer, jobs):
    body = as_viewer.get(f"{JOBS}?limit=2&page=2").json()
    assert [item["id"] for item in body["items"]] == [str(jobs[0].id)]
    assert body["page_size"] == 2 and body["total"] == 3 and body["links"]["next"] is None
    assert "page=1" in body["links"]["prev"] and "page=2" in body["links"]["last"]


def test_it_pages_with_cursors_without_counting(as_viewer, jobs, django_assert_num_queries, without_request_audit):
    as_viewer.get(JOBS)  # authentication is cached from here on
    with django_assert_num_queries(1):
        first = as_viewer.get(f"{JOBS}?cursor=&page_size=2").json()
    assert "total" not in first and len(first["items"]) == 2
    second = as_viewer.get(JOBS, {"cursor": first["next_cursor"], "page_size": 2}).json()
    assert [item["id"] for item in first["items"] + second["items"]] == [str(j.id) for j in reversed(jobs)]
    assert second["next_cursor"] is None and second["links"]["next"] is None


def test_cursors_follow_the_sort_order(as_viewer, jobs):
    first = as_viewer.get(JOBS, {"cursor": "", "page_size": 1, "sort_by": "priority", "sort_order": "asc"}).json()
    rest = as_viewer.get(JOBS, {"cursor": first["next_cursor"], "page_size": 5, "sort_by": "priority",
                                "sort_order": "asc"}).json()  # fmt: skip
    assert [i["id"] for i in first["items"] + rest["items"]] == [str(jobs[i].id) for i in (1, 2, 0)]


def test_the_query_count_does_not_grow_with_the_page_size(
    as_viewer, org, django_assert_num_queries, without_request_audit
):
    JobFactory.create_batch(30, organization=org)
    as_viewer.get(JOBS)
    with django_assert_num_queries(2):  # count + page
        assert len(as_viewer.get(f"{JOBS}?page_size=5").json()["items"]) == 5
    with django_assert_num_queries(2):
        assert len(as_viewer.get(f"{JOBS}?page_size=30").json()["items"]) == 30


def test_outsiders_see_none_of_it(as_outsider, jobs):
    assert as_outsider.get(JOBS).json()["total"] == 0


def test_large_totals_are_estimated(as_viewer, org, settings):
    settings.PAGINATION_EXACT_COUNT_LIMIT = 3
    JobFactory.create_batch(5, organization=org)
    body = as_viewer.get(JOBS).json()
    assert body["total_exact"] is False and body["total"] >= 4 and len(body["items"]) == 5
    settings.PAGINATION_EXACT_COUNT_LIMIT = 10
    body = as_viewer.get(JOBS).json()
    assert body["total_exact"] is True and body["total"] == 5
