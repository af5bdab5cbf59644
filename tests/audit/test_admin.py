"""The audit trail in the admin: staff read, filter and search it; nobody adds, changes or deletes."""

from datetime import UTC, datetime

import pytest

from audit.models import ActorKind, AuditLog
from audit.services import audit_record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LOGS = "/admin/audit/auditlog/"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def records(org, other_org):
    at = datetime(2026, 3, 4, 12, tzinfo=UTC)
    return [
        audit_record(organization_id=org.pk, action="jobs.cancel", actor_kind=ActorKind.USER, username="alice",
                     resource_type="job", resource_id="job-one", success=False, status_code=409, timestamp=at,
                     method="POST", path="/api/v1/jobs/job-one/cancel"),
        audit_record(organization_id=other_org.pk, action="auth.login", actor_kind=ActorKind.ANONYMOUS,
                     username="mallory", success=False, status_code=401, timestamp=at.replace(month=5),
                     path="/api/v1/auth/login"),
    ]  # fmt: skip


def listing(client, query="") -> str:
    response = client.get(f"{LOGS}{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_staff_list_filter_and_search_the_trail(staff_client, records, org, other_org):
    page = listing(staff_client)
    assert "alice" in page and "mallory" in page and "Acme" in page and "Globex" in page
    for query in (f"?organization__id__exact={org.pk}", "?actor_kind__exact=user", "?action__exact=jobs.cancel",
                  "?action=jobs",
                  "?q=job-one", "?q=alice", "?q=jobs/job-one/cancel", "?timestamp__year=2026&timestamp__month=3",
                  "?timestamp__gte=2026-03-01+00:00:00%2B00:00&timestamp__lt=2026-04-01+00:00:00%2B00:00"):  # fmt: skip
        page = listing(staff_client, query)
        assert "alice" in page and "mallory" not in page, query
    assert "mallory" in listing(staff_client, "?success__exact=0&q=mallory")
    assert "alice" not in listing(staff_client, "?success__exact=1")


def test_the_list_reads_a_bounded_number_of_rows(staff_client, records, django_assert_num_queries):
    """No COUNT(*), no DISTINCT over the table for the action filter or the dates: session, user,
    capped count, the page, the organizations' filter."""
    assert "jobs.*" in listing(staff_client)  # the action families, a fixed list
    with django_assert_num_queries(5):
        listing(staff_client)
    with django_assert_num_queries(5):
        listing(staff_client, "?timestamp__year=2026&action=auth")


@pytest.mark.parametrize("query", ["timestamp__year=9999", "timestamp__year=99999999999999999999",
                                   "timestamp__year=2026&timestamp__month=2&timestamp__day=30"])  # fmt: skip
def test_a_date_out_of_range_gets_the_admin_s_error_page(staff_client, query):
    response = staff_client.get(f"{LOGS}?{query}")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_staff_open_a_record(staff_client, records):
    page = staff_client.get(f"{LOGS}{records[0].pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "jobs.cancel" in text and "/api/v1/jobs/job-one/cancel" in text and records[0].hash in text
    assert 'name="_save"' not in text and 'name="_continue"' not in text  # read-only: nothing to save


def test_nobody_adds_changes_or_deletes_records(staff_client, records):
    record = records[0]
    assert staff_client.get(f"{LOGS}add/").status_code == 403
    assert staff_client.post(f"{LOGS}add/", {"action": "forged"}).status_code == 403
    assert staff_client.post(f"{LOGS}{record.pk}/change/", {"action": "forged", "success": "on"}).status_code == 403
    assert staff_client.get(f"{LOGS}{record.pk}/delete/").status_code == 403
    assert staff_client.post(f"{LOGS}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in listing(staff_client)
    bulk = staff_client.post(LOGS, {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"})
    assert bulk.status_code == 200  # the changelist again: there is no such action
    record.refresh_from_db()
    assert record.action == "jobs.cancel" and AuditLog.objects.filter(pk__in=[r.pk for r in records]).count() == 2


def test_staff_without_permissions_see_nothing(client, records):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(LOGS).status_code == 403
    assert client.get(f"{LOGS}{records[0].pk}/change/").status_code == 403


def test_a_record_outlives_what_it_names(staff_client):
    gone = audit_record(organization_id="00000000-0000-0000-0000-000000000001", user_id=999999, username="gone",
                        api_key_id="00000000-0000-0000-0000-000000000002", action="jobs.create",
                        actor_kind=ActorKind.API_KEY)  # fmt: skip
    assert "gone" in listing(staff_client)
    assert "gone" in staff_client.get(f"{LOGS}{gone.pk}/change/").content.decode()
