import hashlib
import hmac
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts.roles import Role

API_KEY_PREFIX_LENGTH = 8
API_KEY_SECRET_LENGTH = 40
API_KEY_LEAD = "dpk"


class User(AbstractUser):
    """A person: logs in with username and password, belongs to organizations."""

    class Meta:
        db_table = "users"


class Organization(models.Model):
    """The tenant (the seeds' ``client_id``): every job, file, key and record belongs to one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(User, through="Membership", related_name="organizations")

    class Meta:
        db_table = "organizations"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    is_default = models.BooleanField(
        default=False, help_text="The organization used when a request names none (X-Organization)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "memberships"
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_user_org"),
            models.UniqueConstraint(fields=["user"], condition=Q(is_default=True), name="membership_one_default"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)


class ApiKey(models.Model):
    """A long random secret for scripts and services.

    Only a short lookup ``prefix`` and an HMAC-SHA256 of the full key are stored: the
    key itself is shown once, at creation. A keyed fast hash (not a password hasher)
    is right for 238-bit random secrets and keeps authentication under a millisecond.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="Permission strings; a subset of the creator's.")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="api_key_org_created")]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({API_KEY_LEAD}_{self.prefix}_…)"

    @staticmethod
    def hash_key(key: str) -> str:
        secret = settings.API_KEY_HMAC_SECRET.encode()
        return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new ``(prefix, full_key)``; the key reads ``dpk_<prefix>_<secret>``."""
        prefix = get_random_string(API_KEY_PREFIX_LENGTH)
        return prefix, f"{API_KEY_LEAD}_{prefix}_{get_random_string(API_KEY_SECRET_LENGTH)}"

    @staticmethod
    def prefix_of(key: str) -> str | None:
        parts = key.split("_")
        if len(parts) != 3 or parts[0] != API_KEY_LEAD or len(parts[1]) != API_KEY_PREFIX_LENGTH:
            return None
        return parts[1]

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(self.key_hash, self.hash_key(key))

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"
