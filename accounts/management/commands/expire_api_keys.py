from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_keys_expirable, api_keys_expire
from pipeline_project.lib.progress import progress_bar


class Command(BaseCommand):
    help = (
        "Revokes API keys past their expires_at (each audited as a system action, api_keys.expire). "
        "Idempotent and safe to run twice at once; also every 5 minutes from the scheduler."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; say how many keys would go.")
        parser.add_argument("--batch-size", type=int, default=500, help="Keys per transaction (default 500).")

    def handle(self, *args, dry_run, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if dry_run:
            count = api_keys_expire(dry_run=True, batch_size=batch_size)
            self.stdout.write(f"Dry run: {count} expired API keys would be revoked; nothing changed.")
            return
        with progress_bar(self.stdout, total=api_keys_expirable().count, description="Revoking") as advance:
            count = api_keys_expire(dry_run=False, batch_size=batch_size, progress=advance)
        self.stdout.write(f"{count} expired API keys revoked.")
