from django.db.models import QuerySet

from accounts.principal import Principal
from audit.models import AuditLog


def audit_log_queryset(*, principal: Principal) -> QuerySet[AuditLog]:
    """The caller's organization's audit records: nothing else is ever visible (others' answer 404)."""
    return AuditLog.objects.filter(organization_id=principal.organization.pk)
