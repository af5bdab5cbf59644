"""Staff manage organizations and API keys in the admin (server-rendered; browser flows come with the back-office)."""

import re

import pytest

from accounts.models import ApiKey
from tests.conftest import key_client
from tests.factories import UserFactory


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


def test_the_admin_pages_render(staff_client, org, owner_key):
    for url in [
        "/admin/",
        "/admin/accounts/apikey/",
        "/admin/accounts/organization/",
        f"/admin/accounts/organization/{org.pk}/change/",
        "/admin/accounts/user/",
    ]:
        assert staff_client.get(url).status_code == 200, url
