"""The audit API: read-only, admins only, organization-scoped, filtered, newest first in cursor pages.

Every call through /api/ is itself recorded by the audit middleware, after its answer is made: a
test's first call sees only the records made beforehand, its later calls also the earlier calls'.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import ActorKind, AuditLog
from audit.services import audit_record
from tests.conftest import key_client
from tests.project.test_errors import error_of

pytestmark = pytest.mark.django_db
LOGS = "/api/v1/audit/logs"
DAY = datetime(2026, 1, 1, 10, tzinfo=UTC)
JOB = "6f1c0b9e-8d2a-4e57-9b3c-1a2d3e4f5a6b"


def record(organization, *, days=0, **fields):
    fields = {"action": "jobs.create", "actor_kind": ActorKind.USER, "status_code": 201, **fields}
    return audit_record(organization_id=organization.pk, timestamp=DAY + timedelta(days=days), **fields)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture
def records(org, owner, member, owner_key):
    """Four records of ``org``, a day apart, oldest first."""
    return [
        record(org, user_id=owner.pk, username="owner", resource_type="job", resource_id=JOB),
        record(org, days=1, user_id=member.pk, username="member", api_key_id=owner_key.pk, actor_kind="api_key",
               action="jobs.cancel", resource_type="job", resource_id=JOB, success=False, status_code=409),
        record(org, days=2, username="ghost", actor_kind=ActorKind.ANONYMOUS, action="auth.login", success=False,
               status_code=401),
        record(org, days=3, user_id=owner.pk, username="owner", api_key_id=owner_key.pk, action="pipelines.update",
               resource_type="pipeline", resource_id="p-1", status_code=200),
    ]  # fmt: skip


def test_admins_read_the_trail_members_and_viewers_do_not(as_owner, as_member, as_viewer, anon):
    assert as_owner.get(LOGS).status_code == 200
    for client in (as_member, as_viewer):
        assert error_of(client.get(LOGS), 403)["code"] == "permission_denied"
    assert error_of(anon.get(LOGS), 401)["code"] == "not_authenticated"


def test_an_admins_api_key_reads_it_too(owner_key, records):
    assert ids(key_client(owner_key.raw_key).get(LOGS)) == [str(r.id) for r in reversed(records)]


def test_a_record_in_full(as_owner, records, owner_key, member):
    response = as_owner.get(f"{LOGS}/{records[1].id}")
    assert response.status_code == 200
    assert response.json() == {
        "id": str(records[1].id), "timestamp": "2026-01-02T10:00:00Z", "actor_kind": "api_key",
        "user_id": member.pk, "username": "member", "api_key_id": str(owner_key.pk), "action": "jobs.cancel",
        "resource_type": "job", "resource_id": JOB, "success": False, "error_message": "", "request_details": {},
        "method": "", "path": "", "status_code": 409, "duration_ms": None, "request_id": "", "ip_address": None,
        "user_agent": "", "seq": 2, "prev_hash": records[0].hash, "hash": records[1].hash,
    }  # fmt: skip


def test_api_calls_are_in_it(as_owner, records):
    as_owner.get(f"{LOGS}?action=jobs.cancel")
    listed = as_owner.get(f"{LOGS}?action=audit.list").json()["items"]
    assert [(item["username"], item["resource_type"], item["status_code"]) for item in listed] == [
        ("owner", "audit_log", 200)
    ]
    assert listed[0]["request_details"] == {"query": {"action": "jobs.cancel"}}


def test_other_organizations_records_are_never_seen(as_owner, as_outsider, other_org, records):
    theirs = record(other_org, action="jobs.cancel")
    nobodys = audit_record(action="jobs.reaped", actor_kind=ActorKind.SYSTEM, timestamp=DAY)  # no organization
    mine = ids(as_owner.get(f"{LOGS}?page_size=100"))
    assert str(theirs.id) not in mine and str(nobodys.id) not in mine and str(records[0].id) in mine
    assert error_of(as_owner.get(f"{LOGS}/{theirs.id}"), 404)["code"] == "not_found"
    assert error_of(as_owner.get(f"{LOGS}/{nobodys.id}"), 404)["code"] == "not_found"
    assert ids(as_outsider.get(f"{LOGS}?to=2027-01-01T00:00:00Z")) == [str(theirs.id)]
    assert error_of(as_outsider.get(f"{LOGS}/{records[0].id}"), 404)["code"] == "not_found"


def test_an_id_nothing_has_is_404(as_owner):
    assert error_of(as_owner.get(f"{LOGS}/00000000-0000-0000-0000-000000000000"), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", [3, 2, 1, 0]),
        ("from=2026-01-02T10:00:00Z", [3, 2, 1]),  # from: inclusive
        ("to=2026-01-02T10:00:00Z", [0]),  # to: exclusive
        ("from=2026-01-02T10:00:00Z&to=2026-01-04T10:00:00Z", [2, 1]),
        ("from=2026-01-02T11:00:00%2B02:00", [3, 2, 1]),  # 09:00 UTC
        ("user={owner}", [3, 0]),
        ("user={member}", [1]),
        ("api_key={key}", [3, 1]),
        ("action=jobs.cancel", [1]),
        ("action=jobs", []),  # exact, not a prefix
        ("action=", [3, 2, 1, 0]),  # an empty text filter filters nothing
        ("resource_type=job", [1, 0]),
        ("resource_id=p-1", [3]),
        (f"resource_id={JOB}", [1, 0]),
        ("success=false", [2, 1]),
        ("success=true", [3, 0]),
        ("status_code=409", [1]),
        ("status_code=404", []),
        ("resource_type=job&success=true", [0]),
    ],
)
def test_filters(as_owner, records, owner, member, owner_key, query, expected):
    query = query.format(owner=owner.pk, member=member.pk, key=owner_key.pk)
    assert ids(as_owner.get(f"{LOGS}?{query}")) == [str(records[i].id) for i in expected]


@pytest.mark.parametrize(
    "query",
    [
        "from=yesterday", "from=", "from=2026-13-01T00:00:00Z", "to=2026-01-01T25:00:00Z", "to=",
        "user=owner", "user=0", "user=1.5", "user=-1", "user=9223372036854775808", "user=",
        "api_key=abc", "api_key=1", "api_key=",
        f"action={'a' * 65}", "action=a%00b", "action=a&action=b",
        f"resource_type={'a' * 33}", f"resource_id={'a' * 65}", "resource_id=a%00",
        "success=maybe", "success=1", "success=True", "success=",
        "status_code=abc", "status_code=99", "status_code=600", "status_code=2_00", "status_code=404.0",
        "status_code=%EF%BC%94%EF%BC%90%EF%BC%94", "status_code=", "status_code=200&status_code=201",
    ],
)  # fmt: skip
def test_bad_filter_values_are_400(as_owner, query):
    name = query.split("=")[0]
    assert name in error_of(as_owner.get(f"{LOGS}?{query}"), 400)["details"], query


@pytest.mark.parametrize("query", ["cursor=nope", "page_size=0", "page_size=x", "limit=-1"])
def test_bad_page_parameters_are_400(as_owner, query):
    assert query.split("=")[0] in error_of(as_owner.get(f"{LOGS}?{query}"), 400)["details"]


def test_cursor_pages_go_newest_first_with_nothing_missed_or_repeated(as_owner, org):
    made = [record(org, days=day // 2, action="jobs.start") for day in range(7)]  # pairs share a timestamp
    newest_first = [str(r.id) for r in sorted(made, key=lambda r: (r.timestamp, r.id), reverse=True)]
    seen, cursor, pages = [], "", 0
    while cursor is not None:
        body = as_owner.get(LOGS, {"action": "jobs.start", "page_size": 2, "cursor": cursor}).json()
        assert len(body["items"]) <= 2 and "total" not in body
        seen += [item["id"] for item in body["items"]]
        cursor, pages = body["next_cursor"], pages + 1
        assert (body["links"]["next"] is None) == (cursor is None)
    assert seen == newest_first and pages == 4


def test_new_records_do_not_shift_the_pages(as_owner, org):
    made = [record(org, days=day, action="jobs.start") for day in range(3)]
    first = as_owner.get(LOGS, {"action": "jobs.start", "page_size": 2}).json()
    record(org, days=9, action="jobs.start")  # newer than everything: it belongs before the first page
    rest = as_owner.get(LOGS, {"action": "jobs.start", "page_size": 2, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in first["items"] + rest["items"]] == [str(r.id) for r in reversed(made)]


def test_the_list_costs_the_same_queries_whatever_the_page_size(as_owner, org):
    for day in range(60):
        record(org, days=day, user_id=1, api_key_id="9a3e4c1d-52b7-4f0e-a6d8-3c1f7e2b5d90")
    as_owner.get(LOGS)  # authentication is cached from here on
    counts = []
    for page_size in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            assert len(ids(as_owner.get(LOGS, {"page_size": page_size}))) == page_size
        counts.append(len(queries))
    # 2 statements: the page (one SELECT; no related object is loaded, only *_id columns), and the
    # audit middleware's record of this very request (one INSERT, chained in the same statement).
    assert counts == [2, 2], [query["sql"] for query in queries.captured_queries]


def test_the_api_changes_nothing(as_owner, records):
    for method in ("post", "put", "patch", "delete"):
        assert error_of(getattr(as_owner, method)(f"{LOGS}/{records[0].id}"), 405)["code"] == "method_not_allowed"
    assert error_of(as_owner.post(LOGS, {}, format="json"), 405)["code"] == "method_not_allowed"
    assert AuditLog.objects.filter(pk__in=[r.pk for r in records]).count() == 4
