"""The one permission class of the API, and the one place that answers 405.

Every view declares ``required_permission``: a permission string such as
``"jobs:create"``, ``None`` for "any authenticated caller", or a dict mapping a
viewset action (or HTTP method) to one of those. A view that handles a method but
declares no permission for it fails closed with ``ImproperlyConfigured`` so a
forgotten check cannot ship. A method the route does not handle is a 405 (with
``Allow``) before anything else, with or without credentials.
"""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.metadata import BaseMetadata
from rest_framework.permissions import BasePermission

_MISSING = object()


def handles(view, method: str) -> bool:
    """Whether ``view`` has a handler for ``method`` (viewsets bind one per routed action)."""
    method = method.lower()
    return method in view.http_method_names and callable(getattr(view, method, None))


def required_permission_for(view, method: str) -> str | None:
    required = getattr(view, "required_permission", _MISSING)
    if required is _MISSING:
        raise ImproperlyConfigured(f"{type(view).__name__} must declare required_permission.")
    if isinstance(required, dict):
        action = getattr(view, "action", None)
        for key in (action, method.lower()):
            if key in required:
                return required[key]
        raise ImproperlyConfigured(f"{type(view).__name__}.required_permission has no entry for {action or method}.")
    return required


class HasPermission(BasePermission):
    """Allows an authenticated principal holding the view's ``required_permission``.

    OPTIONS is answered to anyone (it says which methods the route takes, nothing more);
    an unhandled method is 405 for everyone.
    """

    def has_permission(self, request, view) -> bool:
        if request.method == "OPTIONS":
            return True
        if not handles(view, request.method):
            raise MethodNotAllowed(request.method)
        required = required_permission_for(view, request.method)
        principal = request.auth
        permissions = getattr(principal, "permissions", None)
        if permissions is None:
            return False  # DRF answers 401 when nobody authenticated
        if required is None or required in permissions:
            return True
        self.message = f"This action requires the '{required}' permission."
        return False


class AllowedMethodsMetadata(BaseMetadata):
    """What OPTIONS answers: the route's methods (also in the ``Allow`` header); never fields
    or objects, so it needs no credentials."""

    def determine_metadata(self, request, view) -> dict:
        return {"methods": list(view.allowed_methods)}
