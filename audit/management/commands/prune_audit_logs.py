from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from audit import chain
from audit.models import ActorKind, AuditChainHead, AuditLog
from audit.services import audit_record

BATCH = 5000


class Command(BaseCommand):
    help = (
        "Deletes audit records older than DAYS, the oldest of each chain first, and records each prune in the "
        "chain it pruned (which stays verifiable from its first remaining record). The only way records go."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")

    def handle(self, *args, older_than, **options):
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")
        cutoff = timezone.now() - timedelta(days=older_than)
        total = 0
        for key in AuditChainHead.objects.order_by("chain").values_list("chain", flat=True):
            total += prune(key, cutoff, older_than)
        self.stdout.write(f"{total} audit records older than {older_than} days deleted.")


def prune(key: str, cutoff, older_than: int) -> int:
    """Deletes the chain's records up to the last one before the first record at or after
    ``cutoff`` (a prefix of the chain: ``seq`` order), recording it first."""
    records = AuditLog.objects.filter(chain=key)
    first = records.aggregate(first=Min("seq"))["first"]
    # The chain's oldest records come first in (chain, seq): the walk stops at the first newer one.
    newer = records.filter(timestamp__gte=cutoff).order_by("seq").values_list("seq", flat=True).first()
    head = AuditChainHead.objects.get(chain=key)
    through = (newer - 1) if newer is not None else head.seq
    if first is None or through < first:
        return 0
    with transaction.atomic():
        deleted = records.filter(seq__lte=through).count()
        organization_id = None if key == chain.NO_ORGANIZATION else key
        audit_record(action=chain.PRUNED, actor_kind=ActorKind.SYSTEM, username="system",
                     organization_id=organization_id, resource_type="audit_log",
                     request_details={"older_than_days": older_than, "cutoff": cutoff.isoformat(),
                                      "deleted": deleted, "through_seq": through})  # fmt: skip
        while records.filter(seq__lte=through).exists():
            batch = list(records.filter(seq__lte=through).order_by("seq").values_list("pk", flat=True)[:BATCH])
            AuditLog.objects.filter(pk__in=batch).delete()
    return deleted
