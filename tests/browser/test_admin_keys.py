"""Staff log in through the real login form, create an API key and see it once, revoke keys through
the confirmation page; people who are not staff never get in."""

import re

from playwright.sync_api import expect

from accounts.models import ApiKey
from accounts.roles import Role
from audit.models import AuditLog
from tests.browser.conftest import log_in
from tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory, UserFactory

KEY = re.compile(r"^dpk_\w{8}_\w{40}$")


def pick(page, field: str, search: str) -> None:
    """Chooses ``search`` in an autocomplete (select2) field, as a person does."""
    page.click(f".field-{field} .select2-selection")
    page.fill(".select2-container--open .select2-search__field", search)
    page.click(f".select2-results__option:has-text('{search}')")


def test_staff_create_an_api_key_and_see_it_once(staff_page, shot):
    page = staff_page
    org = OrganizationFactory(name="Acme", slug="acme")
    MembershipFactory(organization=org, user=UserFactory(username="alice"), role=Role.MEMBER)
    expect(page.locator("#site-name")).to_be_visible()
    # the admin is styled: its stylesheet loaded (the header has its colour, not the browser's default)
    assert page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor") != "rgba(0, 0, 0, 0)"
    shot(page, "home")

    page.goto("/admin/accounts/apikey/add/")
    pick(page, "organization", "Acme")
    pick(page, "created_by", "alice")
    page.fill("#id_name", "ci uploads")
    page.check("input[name=scopes][value='jobs:read']")
    page.check("input[name=scopes][value='jobs:create']")
    shot(page, "add-form")
    page.click("input[name=_save]")

    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    key = page.input_value("#api-key-value")
    assert KEY.match(key)
    api_key = ApiKey.objects.get(name="ci uploads")
    assert api_key.matches(key) and api_key.scopes == ["jobs:create", "jobs:read"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-api-key")
    expect(page.locator("#api-key-copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    shot(page, "created-once")

    page.click("#api-key-page")  # the key's page: never the key again
    expect(page).to_have_url(re.compile(rf"/admin/accounts/apikey/{api_key.pk}/change/$"))
    expect(page.locator(".status-badge")).to_have_text("active")
    assert key not in page.content() and not re.search(r"dpk_\w{8}_\w{40}", page.content())
    page.goto("/admin/accounts/apikey/")
    assert key not in page.content()
    expect(page.locator("#result_list")).to_contain_text("ci uploads")
    shot(page, "list")
    assert AuditLog.objects.filter(action="admin.api_keys.create", resource_id=str(api_key.pk)).exists()


def test_staff_revoke_keys_through_the_confirmation_page(staff_page, shot):
    page = staff_page
    org = OrganizationFactory(name="Acme", slug="acme")
    owner = UserFactory(username="bob")
    first = ApiKeyFactory(organization=org, created_by=owner, name="first key")
    second = ApiKeyFactory(organization=org, created_by=owner, name="second key")

    # from the list: select, choose the action, confirm
    page.goto("/admin/accounts/apikey/")
    page.check(f"input[name=_selected_action][value='{first.pk}']")
    page.select_option("select[name=action]", "revoke_api_keys")
    page.click("button[name=index]")
    expect(page.locator("ul.action-applies")).to_contain_text("first key")
    expect(page.get_by_text("cannot be undone")).to_be_visible()
    shot(page, "confirmation")
    first.refresh_from_db()
    assert first.revoked_at is None  # nothing yet
    page.click("input[type=submit][value='Yes, I’m sure']")
    expect(page.locator("ul.messagelist")).to_contain_text("Revoked 1 API key.")
    shot(page, "revoked-from-list")
    first.refresh_from_db()
    assert first.revoked_at is not None

    # from the key's page
    page.goto(f"/admin/accounts/apikey/{second.pk}/change/")
    page.click("a.revoke-link")
    expect(page.locator("ul.action-applies")).to_contain_text("second key")
    page.click("input[type=submit][value='Yes, I’m sure']")
    expect(page).to_have_url(re.compile(rf"/admin/accounts/apikey/{second.pk}/change/$"))
    expect(page.locator(".status-badge")).to_have_text("revoked")
    expect(page.locator("a.revoke-link")).to_have_count(0)
    page.click("text=Audit trail")
    expect(page.locator("#result_list")).to_contain_text("admin.api_keys.revoke")
    shot(page, "audit-trail-of-the-key")
    assert AuditLog.objects.filter(action="admin.api_keys.revoke").count() == 2


def test_people_who_are_not_staff_cannot_reach_the_admin(page, transactional_db, shot):
    page.goto("/admin/dashboard/")  # anonymous: to the login page
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/dashboard/$"))
    UserFactory(username="carol")  # a user of the API, not staff
    log_in(page, "carol")
    expect(page.locator(".errornote")).to_contain_text("staff account")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    shot(page, "refused")
    page.goto("/admin/accounts/apikey/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/accounts/apikey/$"))
