"""DRF authentication: JWT bearer tokens and API keys, each resolving a ``Principal``.

Both set ``request.user`` to the person and ``request.auth`` to the Principal
(organization, role, effective permissions, API key). Lookups go through
``accounts.auth_cache`` (process memory, then Redis) and cost one prepared
PostgreSQL query on a miss.
"""

import hmac
from functools import lru_cache

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework_simplejwt import authentication as simplejwt
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts import auth_cache
from accounts.models import ApiKey, User
from accounts.principal import Principal
from accounts.roles import ROLE_PERMISSIONS
from accounts.selectors import api_key_for_authentication, membership_for_user
from accounts.services import api_key_mark_used

ORGANIZATION_HEADER = "X-Organization"


class NotAMember(exceptions.PermissionDenied):
    default_code = "not_a_member"


SCHEMES = ("bearer", "api-key")


def check_one_credential(request) -> None:
    """A request carries one credential, in a scheme we know. Otherwise each authentication class
    would look at "its" header and a valid one would hide a bad one (``X-API-Key: <valid>`` beside
    ``Authorization: garbage``): 401 instead. Called by the first class, ``JWTAuthentication``."""
    authorization, api_key = request.headers.get("Authorization"), request.headers.get("X-API-Key")
    if authorization is not None and api_key is not None:
        raise exceptions.AuthenticationFailed(
            _("Send one credential: an Authorization header or X-API-Key, not both."), code="ambiguous_credentials"
        )
    if authorization is not None and authorization.partition(" ")[0].lower() not in SCHEMES:
        raise exceptions.AuthenticationFailed(
            _("Unsupported Authorization scheme: use Bearer <token> or Api-Key <key>."), code="unsupported_scheme"
        )


@lru_cache(maxsize=4096)
def _verified_token(raw_token: bytes):
    """A token's signature and claims never change: verify each once per process.
    Expiry, which does change, is checked again on every use."""
    return simplejwt.JWTAuthentication().get_validated_token(raw_token)


class JWTAuthentication(simplejwt.JWTAuthentication):
    """``Authorization: Bearer <access token>``; organization from ``X-Organization`` or the default."""

    def get_validated_token(self, raw_token):
        token = _verified_token(raw_token)
        try:
            token.check_exp()
        except TokenError as exc:
            raise InvalidToken(
                {
                    "detail": _("Given token not valid for any token type"),
                    "messages": [
                        {"token_class": type(token).__name__, "token_type": token.token_type, "message": str(exc)}
                    ],
                }
            ) from exc
        return token

    def authenticate(self, request):
        check_one_credential(request)
        header = self.get_header(request)
        raw_token = None if header is None else self.get_raw_token(header)
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)
        user_id = token.get(jwt_settings.USER_ID_CLAIM)
        if user_id is None:
            raise InvalidToken(_("Token contained no recognizable user identification"))
        organization = request.headers.get(ORGANIZATION_HEADER, "")
        cached = auth_cache.lookup(auth_cache.user_entry(user_id), organization)
        if cached is not None:
            membership = auth_cache.load_membership(cached)
        else:
            membership = membership_for_user(user_id=user_id, organization=organization or None)
            if membership is None:
                self._refuse(user_id, organization)
            auth_cache.store_membership(membership, organization)
        principal = Principal(
            user=membership.user,
            organization=membership.organization,
            role=membership.role,
            permissions=ROLE_PERMISSIONS[membership.role],
        )
        return membership.user, principal

    @staticmethod
    def _refuse(user_id, organization: str):
        if not User.objects.filter(pk=user_id, is_active=True).exists():
            raise exceptions.AuthenticationFailed(_("User not found or inactive."), code="user_inactive")
        if organization:
            raise NotAMember(f"You are not a member of organization '{organization}'.")
        raise NotAMember("You are not a member of any organization.")


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <key>`` or ``X-API-Key: <key>``.

    A key acts for its creator in its organization, with its scopes narrowed to what
    the creator may still do there: demoting or removing the creator narrows the key.
    """

    keyword = "Api-Key"

    def authenticate(self, request):
        key = self._key_from(request)
        if key is None:
            return None
        prefix = ApiKey.prefix_of(key)
        if prefix is None:
            raise exceptions.AuthenticationFailed(_("Invalid API key."), code="invalid_api_key")
        key_hash = ApiKey.hash_key(key)
        cached = auth_cache.lookup(auth_cache.api_key_entry(prefix))
        api_key = auth_cache.load_api_key(cached) if cached is not None else api_key_for_authentication(prefix)
        if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash):
            raise exceptions.AuthenticationFailed(_("Invalid API key."), code="invalid_api_key")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This API key has been revoked."), code="api_key_revoked")
        if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(_("This API key has expired."), code="api_key_expired")
        if api_key.creator_role is None or not api_key.created_by.is_active:
            raise exceptions.AuthenticationFailed(
                _("This API key's owner no longer belongs to its organization."), code="api_key_orphaned"
            )
        if api_key_mark_used(api_key=api_key) or cached is None:
            auth_cache.store_api_key(api_key)
        principal = Principal(
            user=api_key.created_by,
            organization=api_key.organization,
            role=api_key.creator_role,
            permissions=frozenset(api_key.scopes) & ROLE_PERMISSIONS[api_key.creator_role],
            api_key=api_key,
        )
        return api_key.created_by, principal

    def _key_from(self, request) -> str | None:
        authorization = request.headers.get("Authorization", "")
        scheme, _sep, credentials = authorization.partition(" ")
        if scheme.lower() == self.keyword.lower():
            key = credentials.strip()
            if not key:
                raise exceptions.AuthenticationFailed(_("Empty API key."), code="invalid_api_key")
            return key
        return request.headers.get("X-API-Key", "").strip() or None

    def authenticate_header(self, request):
        return self.keyword
