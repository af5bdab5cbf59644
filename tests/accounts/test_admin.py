"""Staff manage users, organizations, memberships and API keys in the admin (server-rendered; the
browser flows are in tests/browser)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Membership
from accounts.roles import Role
from audit.models import AuditLog
from audit.services import audit_record
from tests.conftest import key_client
from tests.factories import PASSWORD, ApiKeyFactory, MembershipFactory, UserFactory

KEYS = "/admin/accounts/apikey/"
KEY_PATTERN = re.compile(r"dpk_\w{8}_\w{40}")


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def staff_with(*codenames: str, **fields):
    user = UserFactory(is_staff=True, **fields)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def add_key(client, org, owner, **data):
    return client.post(f"{KEYS}add/", {"organization": org.pk, "created_by": owner.pk, "name": "from admin",
                                       "scopes": ["jobs:read", "audit:read"], **data})  # fmt: skip


def act(client, action, *objects, confirm=False, **kwargs):
    data = {"action": action, "_selected_action": [obj.pk for obj in objects]}
    if confirm:
        data["post"] = "yes"
    return client.post(KEYS, data, **kwargs)


# --- creating a key: shown once, on the page answering the save --------------------------------


def test_it_creates_an_api_key_and_shows_it_once(staff_client, org, member):
    response = add_key(staff_client, org, member)
    assert response.status_code == 200  # the key's page answers the POST itself: no redirect carries the key
    text = response.content.decode()
    key = KEY_PATTERN.search(text).group(0)
    assert "it will not be shown again" in text and 'id="copy-api-key"' in text
    assert "no-store" in response["Cache-Control"]
    assert "Scopes beyond the owner's role (member) have no effect" in text and "audit:read" in text
    api_key = ApiKey.objects.get(name="from admin")
    assert api_key.matches(key) and api_key.created_by == member and api_key.scopes == ["audit:read", "jobs:read"]
    assert f'href="{KEYS}{api_key.pk}/change/"' in text  # a link to the key's page
    # never carried anywhere: not in a message, the session or a cookie
    assert all(key not in morsel.value for morsel in response.cookies.values())
    assert all(key not in str(value) for value in staff_client.session.values())
    assert key_client(key).get("/api/v1/auth/me").json()["permissions"] == ["jobs:read"]  # narrowed to the role
    for url in (f"{KEYS}{api_key.pk}/change/", KEYS, "/admin/"):  # and never again
        page = staff_client.get(url)
        assert page.status_code == 200 and key not in page.content.decode() and not KEY_PATTERN.search(
            page.content.decode()), url  # fmt: skip


def test_the_creation_is_audited_as_a_staff_action(staff_client, org, member):
    add_key(staff_client, org, member)
    api_key = ApiKey.objects.get()
    record = AuditLog.objects.get(action="admin.api_keys.create")
    assert (record.actor_kind, record.resource_id, record.organization_id) == ("staff", str(api_key.pk), org.pk)
    assert record.request_details["prefix"] == api_key.prefix and record.request_details["owner"] == "member"
    assert not any(KEY_PATTERN.search(str(r.request_details)) for r in AuditLog.objects.all())  # no secret


def test_it_refuses_an_owner_outside_the_organization(staff_client, org, outsider):
    response = add_key(staff_client, org, outsider)
    assert response.status_code == 200 and "must be a member of the organization" in response.content.decode()
    assert not ApiKey.objects.exists() and not AuditLog.objects.filter(action="admin.api_keys.create").exists()


def test_it_refuses_an_expiry_in_the_past_and_a_blank_name(staff_client, org, member):
    past = timezone.now() - timedelta(days=1)
    response = add_key(staff_client, org, member, expires_at_0=past.strftime("%Y-%m-%d"), expires_at_1="00:00:00")
    assert "Must be in the future." in response.content.decode()
    assert "This field is required." in add_key(staff_client, org, member, name="  ").content.decode()
    assert not ApiKey.objects.exists()


def test_it_creates_a_key_that_expires(staff_client, org, owner):
    later = timezone.now() + timedelta(days=30)
    response = add_key(staff_client, org, owner, expires_at_0=later.strftime("%Y-%m-%d"), expires_at_1="12:00:00")
    assert response.status_code == 200 and "Scopes beyond" not in response.content.decode()
    assert ApiKey.objects.get().expires_at.date() == later.date()


# --- the list and a key's page ------------------------------------------------------------------


@pytest.fixture
def keys(org, owner):
    now = timezone.now()
    return {
        "active": ApiKeyFactory(organization=org, created_by=owner, name="active key"),
        "expired": ApiKeyFactory(organization=org, created_by=owner, name="expired key",
                                 expires_at=now - timedelta(hours=1)),
        "revoked": ApiKeyFactory(organization=org, created_by=owner, name="revoked key", revoked_at=now),
    }  # fmt: skip


def test_the_list_shows_status_owner_scopes_expiry_and_filters_by_status(staff_client, keys):
    text = staff_client.get(KEYS).content.decode()
    for status, api_key in keys.items():
        assert f'status-badge status-{status}"' in text and api_key.name in text
        assert f"dpk_{api_key.prefix}_…" in text and api_key.key_hash not in text
    assert "owner" in text and "Acme" in text and "Expires at" in text and "Last used at" in text
    for status, api_key in keys.items():
        page = staff_client.get(f"{KEYS}?status={status}").content.decode()
        assert [name for name in ("active key", "expired key", "revoked key") if name in page] == [api_key.name]


def test_a_keys_page_is_read_only_and_links_to_its_audit_trail(staff_client, keys, org):
    api_key = keys["active"]
    text = staff_client.get(f"{KEYS}{api_key.pk}/change/").content.decode()
    assert 'name="_save"' not in text and "status-active" in text and api_key.key_hash not in text
    assert f"/admin/audit/auditlog/?api_key={api_key.pk}" in text and f"{KEYS}{api_key.pk}/revoke/" in text
    assert f"{KEYS}{keys['revoked'].pk}/revoke/" not in staff_client.get(
        f"{KEYS}{keys['revoked'].pk}/change/").content.decode()  # fmt: skip
    assert staff_client.post(f"{KEYS}{api_key.pk}/change/", {"name": "renamed"}).status_code == 403
    assert staff_client.get(f"{KEYS}{api_key.pk}/delete/").status_code == 403
    assert "delete_selected" not in staff_client.get(KEYS).content.decode()


def test_the_audit_trail_of_a_key_holds_its_requests_and_the_actions_on_it(staff_client, keys, org):
    api_key, other = keys["active"], keys["expired"]
    audit_record(organization_id=org.pk, action="jobs.list", actor_kind="api_key", api_key_id=api_key.pk,
                 username="used-it")  # fmt: skip
    audit_record(organization_id=org.pk, action="api_keys.revoke", actor_kind="user", resource_type="api_key",
                 resource_id=str(api_key.pk), username="revoked-it")  # fmt: skip
    audit_record(organization_id=org.pk, action="jobs.list", actor_kind="api_key", api_key_id=other.pk,
                 username="another-key")  # fmt: skip
    act(staff_client, "revoke_api_keys", api_key, confirm=True)  # a staff action on it: resource "apikey"
    page = staff_client.get(f"/admin/audit/auditlog/?api_key={api_key.pk}").content.decode()
    assert "used-it" in page and "revoked-it" in page and "admin.api_keys.revoke" in page
    assert "another-key" not in page and str(api_key) in page  # the active filter names the key
    assert staff_client.get("/admin/audit/auditlog/?api_key=not-a-uuid").status_code == 200


# --- revoking: the action, through its confirmation page, and from a key's page ----------------


def test_revoking_asks_for_confirmation_first(staff_client, keys):
    response = act(staff_client, "revoke_api_keys", keys["active"], keys["revoked"])
    text = response.content.decode()
    assert response.status_code == 200 and "Yes, I’m sure" in text and 'name="post" value="yes"' in text
    assert "Revoke these" in text and "already revoked" in text and "cannot be undone" in text
    keys["active"].refresh_from_db()
    assert keys["active"].revoked_at is None and not AuditLog.objects.filter(action="admin.api_keys.revoke").exists()


def test_it_revokes_keys_once_confirmed_and_audits_each(staff_client, keys, owner_key):
    response = act(staff_client, "revoke_api_keys", keys["active"], keys["revoked"], owner_key, confirm=True,
                   follow=True)  # fmt: skip
    text = response.content.decode()
    assert "Revoked 2 API keys." in text and "Skipped 1: revoked key" in text and "already revoked" in text
    for api_key in (keys["active"], owner_key):
        api_key.refresh_from_db()
        assert api_key.revoked_at is not None
        record = AuditLog.objects.get(action="admin.api_keys.revoke", resource_id=str(api_key.pk))
        assert (record.actor_kind, record.organization_id) == ("staff", api_key.organization_id)
    assert key_client(owner_key.raw_key).get("/api/v1/auth/me").status_code == 401  # refused at once


def test_it_revokes_a_key_from_its_page(staff_client, keys):
    api_key = keys["active"]
    url = f"{KEYS}{api_key.pk}/revoke/"
    page = staff_client.get(url)
    assert page.status_code == 200 and "Yes, I’m sure" in page.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    response = staff_client.post(url, {"post": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == f"{KEYS}{api_key.pk}/change/"
    assert "Revoked 1 API key." in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and AuditLog.objects.filter(action="admin.api_keys.revoke").count() == 1
    assert staff_client.get(f"{KEYS}00000000-0000-0000-0000-000000000000/revoke/").status_code == 302  # no such key


def test_revoking_needs_a_csrf_token(keys):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    api_key = keys["active"]
    assert act(client, "revoke_api_keys", api_key, confirm=True).status_code == 403
    assert client.post(f"{KEYS}{api_key.pk}/revoke/", {"post": "yes"}).status_code == 403
    assert client.post(f"{KEYS}add/", {"name": "x"}).status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_staff_who_may_only_view_keys_cannot_revoke_or_create(client, keys):
    client.force_login(staff_with("view_apikey"))
    api_key = keys["active"]
    text = client.get(KEYS).content.decode()
    assert "active key" in text and "revoke_api_keys" not in text and f"{KEYS}add/" not in text
    act(client, "revoke_api_keys", api_key, confirm=True)
    assert client.get(f"{KEYS}{api_key.pk}/revoke/").status_code == 403
    assert client.get(f"{KEYS}add/").status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_people_who_are_not_staff_never_reach_the_admin(client, keys, owner):
    for url in (KEYS, f"{KEYS}add/", f"{KEYS}{keys['active'].pk}/revoke/", "/admin/"):
        assert client.get(url).status_code == 302, url  # anonymous: to the login page
    client.force_login(owner)  # an organization's admin is not staff
    response = client.get(KEYS)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    act(client, "revoke_api_keys", keys["active"], confirm=True)
    keys["active"].refresh_from_db()
    assert keys["active"].revoked_at is None


# --- users, organizations, memberships ------------------------------------------------------------


def test_the_admin_pages_render(staff_client, org, owner, owner_key):
    membership = Membership.objects.get(user=owner)
    for url in [
        "/admin/",
        KEYS,
        f"{KEYS}add/",
        "/admin/accounts/organization/",
        f"/admin/accounts/organization/{org.pk}/change/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{owner.pk}/change/",
        "/admin/accounts/user/add/",
        "/admin/accounts/membership/",
        f"/admin/accounts/membership/{membership.pk}/change/",
    ]:
        assert staff_client.get(url).status_code == 200, url


def test_a_users_page_shows_their_memberships_and_users_filter_by_role(staff_client, org, other_org, owner, viewer):
    MembershipFactory(user=viewer, organization=other_org, role=Role.ADMIN, is_default=False)
    page = staff_client.get(f"/admin/accounts/user/{viewer.pk}/change/").content.decode()
    assert "organization membership" in page.lower() and "Globex" in page and 'value="viewer" selected' in page
    listing = staff_client.get("/admin/accounts/user/?memberships__role=viewer").content.decode()
    assert ">viewer<" in listing and ">owner<" not in listing
    assert "Acme (viewer), Globex (admin)" in listing or "Globex (admin), Acme (viewer)" in listing


def test_staff_change_a_members_role(staff_client, org, member):
    membership = Membership.objects.get(user=member)
    response = staff_client.post(f"/admin/accounts/membership/{membership.pk}/change/", {
        "user": member.pk, "organization": org.pk, "role": "viewer", "is_default": "on"})  # fmt: skip
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == "viewer"
    assert ">member<" in staff_client.get("/admin/accounts/membership/?role__exact=viewer").content.decode()
    assert AuditLog.objects.filter(action="admin.change", resource_type="membership").exists()


def test_the_login_page_logs_staff_in(client, db):
    UserFactory(username="staffer", is_staff=True)
    response = client.post("/admin/login/?next=/admin/", {"username": "staffer", "password": PASSWORD,
                                                          "next": "/admin/"})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == "/admin/"


# --- the admin's login is rate limited like the API's (item 11 of the security probe) -------------

ADMIN_LOGIN = "/admin/login/"
API_LOGIN = "/api/v1/auth/login"


@pytest.fixture
def login_rate(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "login": "3/hour"}}


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def password_checks(monkeypatch):
    """How many times a password was checked."""
    from django.contrib.auth import forms

    calls = []

    def counting(request=None, **credentials):
        calls.append(credentials.get("username"))
        return authenticate(request, **credentials)

    authenticate = forms.authenticate
    monkeypatch.setattr(forms, "authenticate", counting)
    return calls


def admin_login(client, username, password, ip="10.0.0.1"):
    return client.post(ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


def test_the_admin_login_still_logs_in(client, root):
    response = admin_login(client, "root", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_it_throttles_admin_logins_per_client_ip(client, root, login_rate, password_checks):
    for username in ("root", "admin", "someone"):  # one address trying several accounts
        assert admin_login(client, username, "wrong").status_code == 200
    response = admin_login(client, "root", PASSWORD)  # the right password, too late
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 3600
    assert "Too many login attempts" in response.content.decode()
    assert 'name="password"' in response.content.decode()  # the login page, with the error
    assert password_checks == ["root", "admin", "someone"]  # the fourth attempt never reached the password
    assert "_auth_user_id" not in client.session
    assert admin_login(client, "root", PASSWORD, ip="10.0.0.2").status_code == 302  # another address is not held


def test_it_throttles_admin_logins_per_username(client, root, login_rate, password_checks):
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # several addresses trying one account
        assert admin_login(client, "root", "wrong", ip=ip).status_code == 200
    assert admin_login(client, "ROOT", PASSWORD, ip="10.0.0.4").status_code == 429  # case makes no new bucket
    assert admin_login(client, "root", PASSWORD, ip="10.0.0.5").status_code == 429
    assert len(password_checks) == 3


def test_the_api_login_counts_per_username_too_sharing_the_admins_counters(client, root, login_rate):
    from rest_framework.test import APIClient

    api = APIClient()
    assert admin_login(client, "root", "wrong", ip="10.0.0.1").status_code == 200
    credentials = {"username": "root", "password": "wrong"}
    assert api.post(API_LOGIN, credentials, format="json", REMOTE_ADDR="10.0.0.2").status_code == 401
    assert api.post(API_LOGIN, credentials, format="json", REMOTE_ADDR="10.0.0.3").status_code == 401
    response = api.post(API_LOGIN, {"username": "root", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.4")
    assert response.status_code == 429 and response.json()["error"]["code"] == "throttled"
    assert admin_login(client, "root", PASSWORD, ip="10.0.0.5").status_code == 429
    other = {"username": "someone-else", "password": "x"}
    assert api.post(API_LOGIN, other, format="json", REMOTE_ADDR="10.0.0.6").status_code == 401  # not held
