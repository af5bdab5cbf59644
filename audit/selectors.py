from datetime import datetime

from django.db.models import QuerySet

from accounts.principal import Principal
from audit.models import AuditLog


def audit_log_queryset(*, principal: Principal) -> QuerySet[AuditLog]:
    """The caller's organization's audit records: nothing else is ever visible (others' answer 404)."""
    return AuditLog.objects.filter(organization_id=principal.organization.pk)


def audit_prunable_through(*, chain: str, cutoff: datetime) -> int | None:
    """The last ``seq`` of the chain's prefix older than ``cutoff`` (records before its first record
    at or after ``cutoff``, in ``seq`` order: the walk follows the (chain, seq) index and stops
    there), or None when that prefix is empty."""
    records = AuditLog.objects.filter(chain=chain)
    newer = records.filter(timestamp__gte=cutoff).order_by("seq").values_list("seq", flat=True).first()
    if newer is not None:
        return newer - 1 if records.filter(seq__lt=newer).exists() else None
    return records.order_by("-seq").values_list("seq", flat=True).first()
