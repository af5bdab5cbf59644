import uuid
from functools import cache

from django.db import connection
from django.db.models import QuerySet

from accounts.auth_cache import API_KEY_FIELDS, MEMBERSHIP_FIELDS, ORGANIZATION_FIELDS, USER_FIELDS
from accounts.models import ApiKey, Membership, Organization, User
from accounts.principal import Principal
from accounts.roles import Role
from pipeline_project.lib.sql import columns, fetch_one


@cache
def _membership_sql(by: str) -> str:
    where = {"default": "", "id": "AND o.id = %s", "slug": "AND o.slug = %s"}[by]
    return f"""
        SELECT {columns("m", Membership, MEMBERSHIP_FIELDS)}, {columns("u", User, USER_FIELDS)},
               {columns("o", Organization, ORGANIZATION_FIELDS)}
        FROM memberships m
        JOIN users u ON u.id = m.user_id
        JOIN organizations o ON o.id = m.organization_id
        WHERE m.user_id = %s AND u.is_active {where}
        ORDER BY m.is_default DESC, m.created_at
        LIMIT 1"""


def membership_for_user(*, user_id, organization: str | None = None) -> Membership | None:
    """The active user's membership in ``organization`` (id or slug), else their default one,
    with ``user`` and ``organization`` loaded: one prepared query on every JWT request."""
    params = [user_id]
    by = "default"
    if organization:
        try:
            params.append(Organization._meta.pk.get_db_prep_value(uuid.UUID(organization), connection))
            by = "id"
        except ValueError:
            params.append(organization)
            by = "slug"
    row = fetch_one(
        _membership_sql(by),
        params,
        (Membership, MEMBERSHIP_FIELDS),
        (User, USER_FIELDS),
        (Organization, ORGANIZATION_FIELDS),
    )
    if row is None:
        return None
    membership, membership.user, membership.organization = row
    return membership


@cache
def _api_key_sql() -> str:
    return f"""
        SELECT {columns("k", ApiKey, API_KEY_FIELDS)}, {columns("u", User, USER_FIELDS)},
               {columns("o", Organization, ORGANIZATION_FIELDS)}, m.role
        FROM api_keys k
        JOIN users u ON u.id = k.created_by_id
        JOIN organizations o ON o.id = k.organization_id
        LEFT JOIN memberships m ON m.user_id = k.created_by_id AND m.organization_id = k.organization_id
        WHERE k.prefix = %s"""


def api_key_for_authentication(prefix: str) -> ApiKey | None:
    """The key with this prefix, its creator, organization and the creator's current
    role there (``creator_role``, None when no longer a member): one prepared query."""
    row = fetch_one(
        _api_key_sql(),
        [prefix],
        (ApiKey, API_KEY_FIELDS),
        (User, USER_FIELDS),
        (Organization, ORGANIZATION_FIELDS),
        (None, ["role"]),
    )
    if row is None:
        return None
    api_key, api_key.created_by, api_key.organization, api_key.creator_role = row
    return api_key


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """Admins see every key of the organization; others see the keys they created."""
    keys = ApiKey.objects.filter(organization=principal.organization).select_related("created_by")
    if principal.role != Role.ADMIN:
        keys = keys.filter(created_by=principal.user)
    return keys
