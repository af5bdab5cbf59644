import uuid

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import ApiKey, Membership
from accounts.principal import Principal
from accounts.roles import Role


def membership_for_user(*, user_id, organization: str | None = None) -> Membership | None:
    """The active user's membership in ``organization`` (id or slug), else their default one.

    One query, with user and organization joined: this runs on every JWT request.
    """
    memberships = Membership.objects.select_related("user", "organization").filter(
        user_id=user_id, user__is_active=True
    )
    if organization:
        try:
            memberships = memberships.filter(organization_id=uuid.UUID(organization))
        except ValueError:
            memberships = memberships.filter(organization__slug=organization)
    return memberships.order_by("-is_default", "created_at").first()


def api_key_for_authentication(key: str) -> ApiKey | None:
    """The key row for ``key``'s prefix with its creator, organization and the creator's
    current role there (``creator_role``, None when no longer a member), in one query."""
    prefix = ApiKey.prefix_of(key)
    if prefix is None:
        return None
    creator_role = Membership.objects.filter(
        user_id=OuterRef("created_by_id"), organization_id=OuterRef("organization_id")
    ).values("role")[:1]
    return (
        ApiKey.objects.select_related("organization", "created_by")
        .annotate(creator_role=Subquery(creator_role))
        .filter(prefix=prefix)
        .first()
    )


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """Admins see every key of the organization; others see the keys they created."""
    keys = ApiKey.objects.filter(organization=principal.organization).select_related("created_by")
    if principal.role != Role.ADMIN:
        keys = keys.filter(created_by=principal.user)
    return keys
