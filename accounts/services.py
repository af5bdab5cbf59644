from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts import auth_cache
from accounts.models import ApiKey, Membership, Organization, User
from accounts.principal import Principal
from accounts.roles import Role
from pipeline_project.lib.batches import in_locked_batches
from pipeline_project.lib.errors import ApplicationError
from pipeline_project.lib.events import Event, announce


def organization_create(*, name: str, owner: User | None = None, slug: str | None = None) -> Organization:
    """A new organization; ``owner`` (if given) joins it as admin."""
    with transaction.atomic():
        organization = Organization.objects.create(name=name, slug=slug or _free_slug(name))
        if owner is not None:
            membership_create(user=owner, organization=organization, role=Role.ADMIN)
    return organization


def _free_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def membership_create(*, user: User, organization: Organization, role: str) -> Membership:
    """Adds ``user`` to ``organization``; their first organization becomes their default."""
    with transaction.atomic():
        is_first = not Membership.objects.filter(user=user).exists()
        return Membership.objects.create(user=user, organization=organization, role=role, is_default=is_first)


def api_key_create(
    *,
    principal: Principal,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Creates a key for the caller's organization; returns it with the full key (shown once).

    Scopes default to all of the caller's permissions and may never exceed them.
    """
    if scopes is None:
        scopes = sorted(principal.permissions)
    beyond = sorted(set(scopes) - principal.permissions)
    if beyond:
        raise ApplicationError(
            "Scopes may not exceed your own permissions.",
            code="invalid",
            details={"scopes": [f"You do not hold: {', '.join(beyond)}."]},
        )
    for _ in range(5):  # a prefix collision is astronomically rare; retry rather than fail
        prefix, key = ApiKey.generate()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    organization=principal.organization,
                    created_by=principal.user,
                    name=name,
                    prefix=prefix,
                    key_hash=ApiKey.hash_key(key),
                    scopes=sorted(set(scopes)),
                    expires_at=expires_at,
                )
            return api_key, key
        except IntegrityError:
            continue
    raise RuntimeError("Could not allocate a unique API key prefix.")


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revokes the key (idempotent); it answers 401 from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=api_key.revoked_at)
        auth_cache.forget(api_key_prefixes=[api_key.prefix])
    return api_key


def api_keys_expirable(*, now: datetime | None = None):
    """Keys past their ``expires_at`` and not revoked yet."""
    return ApiKey.objects.filter(revoked_at__isnull=True, expires_at__lte=now or timezone.now())


def api_keys_expire(*, dry_run: bool = False, batch_size: int = 500, progress=None) -> int:
    """Revokes the keys past their ``expires_at`` (not revoked yet), ``batch_size`` per transaction;
    returns how many (with ``dry_run``: how many it would, changing nothing). Each key is announced
    (``api_key.expired``, the audit trail's system action) in the transaction of its revocation and
    dropped from the auth cache. Safe to run twice at once: a batch is claimed with
    ``FOR UPDATE SKIP LOCKED`` and revoked only if still unrevoked. ``progress(n)`` after each batch."""
    cutoff = timezone.now()
    if dry_run:
        return api_keys_expirable(now=cutoff).count()

    def revoke(batch: list[tuple]) -> None:
        now = timezone.now()
        ApiKey.objects.filter(pk__in=[pk for pk, *_ in batch], revoked_at__isnull=True).update(revoked_at=now)
        auth_cache.forget(api_key_prefixes=[prefix for _, prefix, *_ in batch])
        announce(
            Event(type="api_key.expired", organization_id=organization_id, resource_id=str(pk), occurred_at=now,
                  details={"name": name, "prefix": prefix, "expires_at": expires_at.isoformat()})
            for pk, prefix, organization_id, name, expires_at in batch
        )  # fmt: skip

    return in_locked_batches(api_keys_expirable(now=cutoff).order_by("pk"),
                             ["pk", "prefix", "organization_id", "name", "expires_at"], revoke,
                             batch_size=batch_size, progress=progress)  # fmt: skip


def api_key_mark_used(*, api_key: ApiKey) -> bool:
    """Records use, at most once per ``API_KEY_LAST_USED_RESOLUTION`` seconds per key;
    True when it wrote (the caller refreshes its cached copy of the key)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION)
    if api_key.last_used_at is not None and api_key.last_used_at >= stale_before:
        return False
    api_key.last_used_at = now
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return True
