"""Staff manage organizations and API keys in the admin (server-rendered; browser flows come with the back-office)."""

import re

import pytest

from accounts.models import ApiKey
from audit.models import AuditLog
from tests.conftest import key_client
from tests.factories import PASSWORD, UserFactory


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_it_creates_an_api_key_and_shows_it_once(staff_client, org, member):
    response = staff_client.post(
        "/admin/accounts/apikey/add/",
        {"organization": org.pk, "created_by": member.pk, "name": "from admin", "scopes": ["jobs:read", "audit:read"]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    key = re.search(r"dpk_\w{8}_\w{40}", text).group(0)
    assert "Scopes beyond the owner" in text
    api_key = ApiKey.objects.get(name="from admin")
    assert api_key.matches(key) and api_key.created_by == member
    assert key_client(key).get("/api/v1/auth/me").json()["permissions"] == ["jobs:read"]  # narrowed to the role
    assert key not in staff_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()


def test_it_refuses_an_owner_outside_the_organization(staff_client, org, outsider):
    response = staff_client.post(
        "/admin/accounts/apikey/add/",
        {"organization": org.pk, "created_by": outsider.pk, "name": "x", "scopes": ["jobs:read"]},
    )
    assert "must be a member of the organization" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_it_revokes_keys_with_an_action(staff_client, owner_key):
    staff_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [owner_key.pk]}, follow=True)
    owner_key.refresh_from_db()
    assert owner_key.revoked_at is not None
    record = AuditLog.objects.get(action="admin.api_keys.revoke")  # a staff action in the trail
    assert (record.actor_kind, record.resource_id, record.organization_id) == (
        "staff", str(owner_key.pk), owner_key.organization_id)  # fmt: skip


def test_the_admin_pages_render(staff_client, org, owner_key):
    for url in [
        "/admin/",
        "/admin/accounts/apikey/",
        "/admin/accounts/organization/",
        f"/admin/accounts/organization/{org.pk}/change/",
        "/admin/accounts/user/",
    ]:
        assert staff_client.get(url).status_code == 200, url


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
