"""The one permission class of the API.

Every view declares ``required_permission``: a permission string such as
``"jobs:create"``, ``None`` for "any authenticated caller", or a dict mapping a
viewset action (or HTTP method) to one of those. A view that declares nothing
fails closed with ``ImproperlyConfigured`` so a forgotten check cannot ship.
"""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

_MISSING = object()


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
    """Allows an authenticated principal holding the view's ``required_permission``."""

    def has_permission(self, request, view) -> bool:
        required = required_permission_for(view, request.method)
        principal = request.auth
        permissions = getattr(principal, "permissions", None)
        if permissions is None:
            return False  # DRF answers 401 when nobody authenticated
        if required is None or required in permissions:
            return True
        self.message = f"This action requires the '{required}' permission."
        return False
