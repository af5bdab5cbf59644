"""Staff actions in the admin, mirrored from Django's admin log (every add, change and delete
made through the admin writes a ``LogEntry``) into the audit trail, in the same transaction.

Django writes the entries of a multi-object action with ``bulk_create``, which sends no
``post_save``: so the mirror wraps ``LogEntryManager.log_actions``, the one method every admin
write of the log goes through (``install``, called once from ``AuditConfig.ready``).
"""

import json

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry, LogEntryManager

from accounts.models import Organization
from audit.models import ActorKind
from audit.services import audit_record

VERBS = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}


def install() -> None:
    original = LogEntryManager.log_actions
    if getattr(original, "audited", False):
        return

    def log_actions(self, *args, **kwargs):
        logged = original(self, *args, **kwargs)
        for entry in [logged] if isinstance(logged, LogEntry) else logged:
            record(entry)
        return logged

    log_actions.audited = True
    LogEntryManager.log_actions = log_actions


def record(instance: LogEntry) -> None:
    content_type = instance.content_type
    model = content_type.model_class() if content_type is not None else None
    organization_id = None
    if model is not None and instance.object_id:
        organization_id = _organization_of(model, instance.object_id)
    try:
        change = json.loads(instance.change_message) if instance.change_message else []
    except ValueError:
        change = instance.change_message
    audit_record(
        action=f"admin.{VERBS.get(instance.action_flag, 'action')}",
        actor_kind=ActorKind.STAFF,
        user_id=instance.user_id,
        username=instance.user.get_username(),
        organization_id=organization_id,
        resource_type=content_type.model if content_type is not None else "",
        resource_id=instance.object_id or "",
        request_details={"object": instance.object_repr, "change": change},
    )


def _organization_of(model, object_id):
    """The organization of the object (or the object itself), if it has one (and still exists)."""
    if model is Organization:
        return object_id
    field = "organization_id" if any(f.attname == "organization_id" for f in model._meta.concrete_fields) else None
    if field is None:
        return None
    try:
        return model._base_manager.filter(pk=object_id).values_list(field, flat=True).first()
    except (ValueError, TypeError):
        return None
