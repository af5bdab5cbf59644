"""The shape every cleanup and expiry command shares: ``--dry-run``, ``--batch-size``, a progress
bar on a terminal, a one-line summary. A command names what it does and calls its service."""

from django.core.management.base import BaseCommand, CommandError

from pipeline_project.lib.progress import progress_bar


class BatchCommand(BaseCommand):
    batch_size = 500  # default of --batch-size
    unit = "rows"  # what --batch-size counts, in its help
    verb = "Deleting"  # the progress bar's label

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; say how many would go.")
        parser.add_argument("--batch-size", type=int, default=self.batch_size,
                            help=f"{self.unit.capitalize()} per transaction (default {self.batch_size}).")  # fmt: skip

    def handle(self, *args, dry_run, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        self.check_options(**options)
        if dry_run:
            count = self.run(dry_run=True, batch_size=batch_size, progress=None, **options)
            self.stdout.write(f"Dry run: {self.would(count, **options)}; nothing changed.")
            return
        with progress_bar(self.stdout, total=lambda: self.pending(**options), description=self.verb) as advance:
            count = self.run(dry_run=False, batch_size=batch_size, progress=advance, **options)
        self.stdout.write(self.done(count, **options))

    def check_options(self, **options) -> None:
        """Raises CommandError for options out of range."""

    def run(self, *, dry_run: bool, batch_size: int, progress, **options) -> int:
        """Calls the service; returns how many rows it handled (would handle, when ``dry_run``)."""
        raise NotImplementedError

    def pending(self, **options) -> int:
        """How many rows the run will handle (counted only when a progress bar is drawn)."""
        raise NotImplementedError

    def would(self, count: int, **options) -> str:
        raise NotImplementedError

    def done(self, count: int, **options) -> str:
        raise NotImplementedError
