from dataclasses import dataclass

from accounts.models import ApiKey, Organization, User


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and for which organization: DRF's ``request.auth`` on every API request."""

    user: User
    organization: Organization
    role: str
    permissions: frozenset[str]
    api_key: ApiKey | None = None

    @property
    def auth_method(self) -> str:
        return "api_key" if self.api_key is not None else "jwt"

    @property
    def actor(self) -> str:
        """How the audit trail and job timelines name the caller."""
        return f"key:{self.api_key.pk}" if self.api_key is not None else f"user:{self.user.pk}"

    @property
    def throttle_ident(self) -> str:
        """The rate-limit bucket: one per API key, or per user for JWT callers."""
        return self.actor
