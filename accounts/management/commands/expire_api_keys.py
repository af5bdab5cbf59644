from accounts.services import api_keys_expirable, api_keys_expire
from pipeline_project.lib.commands import BatchCommand


class Command(BatchCommand):
    help = (
        "Revokes API keys past their expires_at (each audited as a system action, api_keys.expire). "
        "Idempotent and safe to run twice at once; also every 5 minutes from the scheduler."
    )
    unit, verb = "keys", "Revoking"

    def run(self, *, dry_run, batch_size, progress, **options) -> int:
        return api_keys_expire(dry_run=dry_run, batch_size=batch_size, progress=progress)

    def pending(self, **options) -> int:
        return api_keys_expirable().count()

    def would(self, count, **options) -> str:
        return f"{count} expired API keys would be revoked"

    def done(self, count, **options) -> str:
        return f"{count} expired API keys revoked."
