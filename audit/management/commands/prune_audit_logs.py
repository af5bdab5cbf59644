from django.core.management.base import CommandError

from audit.services import audit_logs_prune
from pipeline_project.lib.commands import BatchCommand


class Command(BatchCommand):
    help = (
        "Deletes audit records older than DAYS, the oldest of each chain first, and records each prune in the "
        "chain it pruned (which stays verifiable from its first remaining record). The only way records go. "
        "Idempotent and safe to run twice at once; also daily from the scheduler with AUDIT_LOG_RETENTION."
    )
    batch_size, unit = 5000, "records"

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        super().add_arguments(parser)

    def check_options(self, *, older_than, **options) -> None:
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")

    def run(self, *, dry_run, batch_size, progress, older_than, **options) -> int:
        return audit_logs_prune(older_than=older_than, dry_run=dry_run, batch_size=batch_size, progress=progress)

    def pending(self, *, older_than, **options) -> int:
        return audit_logs_prune(older_than=older_than, dry_run=True)

    def would(self, count, *, older_than, **options) -> str:
        return f"{count} audit records older than {older_than} days would be deleted"

    def done(self, count, *, older_than, **options) -> str:
        return f"{count} audit records older than {older_than} days deleted."
