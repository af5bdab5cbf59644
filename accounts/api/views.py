from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import (
    TokenBlacklistSerializer,
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts import roles, selectors, services
from accounts.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    LoginSerializer,
    MeSerializer,
    RefreshSerializer,
    TokenPairSerializer,
)
from accounts.models import ApiKey
from pipeline_project.lib.schema import errors
from pipeline_project.lib.throttling import AnonRateThrottle, LoginRateThrottle

INVALID_REFRESH = "The refresh token is invalid, expired or already used (`token_not_valid`)."


def _token_response(tokens: dict) -> Response:
    return Response(
        {
            "access": tokens["access"],
            "refresh": tokens["refresh"],
            "token_type": "Bearer",
            "expires_in": int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
        }
    )


class _TokenView(APIView):
    """Public token endpoints: the credential is in the body, not a header."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]
    token_serializer_class = None
    rejected = InvalidToken  # what a credential that passed our shape check but not simplejwt's is

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'  # keeps failed logins 401 (DRF turns 401 without it into 403)

    def validated_tokens(self, request) -> dict:
        serializer = self.token_serializer_class(data=request.data, context={"request": request})
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        except ObjectDoesNotExist:  # a refresh token of a user deleted since
            raise InvalidToken("The token's user no longer exists.") from None
        except ValidationError:  # our serializer checked the shape; simplejwt's trims, so "\f" is blank there
            raise self.rejected() from None
        return serializer.validated_data


class LoginView(_TokenView):
    token_serializer_class = TokenObtainPairSerializer
    rejected = AuthenticationFailed
    throttle_classes = [AnonRateThrottle, LoginRateThrottle]

    @extend_schema(
        tags=["auth"],
        summary="Log in with username and password",
        request=LoginSerializer,
        responses={
            200: TokenPairSerializer,
            **errors(unauthorized="Wrong username or password (`authentication_failed`)."),
        },
        examples=[OpenApiExample("Login", value={"username": "alice", "password": "s3cret-pass"}, request_only=True)],
    )
    def post(self, request):
        LoginSerializer(data=request.data).is_valid(raise_exception=True)
        return _token_response(self.validated_tokens(request))


class RefreshView(_TokenView):
    token_serializer_class = TokenRefreshSerializer

    @extend_schema(
        tags=["auth"],
        summary="Exchange a refresh token for a new access and refresh token",
        description="Refresh tokens rotate: the one sent is blacklisted and cannot be used again.",
        request=RefreshSerializer,
        responses={200: TokenPairSerializer, **errors(unauthorized=INVALID_REFRESH)},
    )
    def post(self, request):
        RefreshSerializer(data=request.data).is_valid(raise_exception=True)
        return _token_response(self.validated_tokens(request))


class LogoutView(_TokenView):
    token_serializer_class = TokenBlacklistSerializer

    @extend_schema(
        tags=["auth"],
        summary="Log out: blacklist a refresh token",
        description="Access tokens already issued stay valid until they expire (JWT_ACCESS_TTL).",
        request=RefreshSerializer,
        responses={204: None, **errors(unauthorized=INVALID_REFRESH)},
    )
    def post(self, request):
        RefreshSerializer(data=request.data).is_valid(raise_exception=True)
        self.validated_tokens(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    required_permission = None  # any authenticated caller

    @extend_schema(
        tags=["auth"], summary="The caller: user, organization, role and permissions", responses=MeSerializer
    )
    def get(self, request):
        # Built by hand rather than through MeSerializer (which documents it): this runs on
        # every client's first call and is the authentication benchmark's target.
        principal = request.auth
        user, organization, api_key = principal.user, principal.organization, principal.api_key
        return Response(
            {
                "user": {
                    "id": user.id,
                    "username": user.username,
                    "email": user.email,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                },
                "organization": {"id": str(organization.id), "name": organization.name, "slug": organization.slug},
                "role": principal.role,
                "permissions": sorted(principal.permissions),
                "auth_method": principal.auth_method,
                "api_key": None if api_key is None else {"id": str(api_key.id), "name": api_key.name},
            }
        )


@extend_schema(tags=["auth"])
class ApiKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """API keys of the caller's organization (members see only their own)."""

    required_permission = roles.KEYS_MANAGE
    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()  # for the schema; requests use the selector

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.api_key_list(principal=self.request.auth)

    @extend_schema(
        summary="Create an API key",
        description="The full key is in this response only; the server keeps just a hash.",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
        examples=[
            OpenApiExample(
                "CI key",
                value={"name": "ci-uploader", "scopes": ["jobs:create", "jobs:read"], "expires_at": None},
                request_only=True,
            )
        ],
    )
    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, key = services.api_key_create(principal=request.auth, **serializer.validated_data)
        api_key.key = key
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="List API keys")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get an API key")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Revoke an API key",
        description="Revokes the key (idempotent): it stays listed, `status: revoked`, and answers 401 from the next "
        "request on. A key may revoke itself (a "
        "leaked key's last act): the revoking request still succeeds, nothing after it does.",
    )
    def destroy(self, request, *args, **kwargs):
        services.api_key_revoke(api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
