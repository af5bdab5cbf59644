"""Roles and the permission strings they grant.

Permissions are checked by ``pipeline_project.lib.permissions.HasPermission``
against the ``required_permission`` each view declares.
"""

from django.db import models

JOBS_READ = "jobs:read"
JOBS_CREATE = "jobs:create"
JOBS_CANCEL = "jobs:cancel"
JOBS_RETRY = "jobs:retry"
PIPELINES_READ = "pipelines:read"
PIPELINES_WRITE = "pipelines:write"
WEBHOOKS_MANAGE = "webhooks:manage"
AUDIT_READ = "audit:read"
KEYS_MANAGE = "keys:manage"

ALL_PERMISSIONS = (
    JOBS_READ,
    JOBS_CREATE,
    JOBS_CANCEL,
    JOBS_RETRY,
    PIPELINES_READ,
    PIPELINES_WRITE,
    WEBHOOKS_MANAGE,
    AUDIT_READ,
    KEYS_MANAGE,
)


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


_VIEWER = frozenset({JOBS_READ, PIPELINES_READ})
# Members run jobs and hold API keys of their own (they see and revoke only their own keys).
_MEMBER = _VIEWER | {JOBS_CREATE, JOBS_CANCEL, JOBS_RETRY, KEYS_MANAGE}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: _VIEWER,
    Role.MEMBER: _MEMBER,
    Role.ADMIN: frozenset(ALL_PERMISSIONS),
}
