from django.core.management.base import BaseCommand

from jobs.services import job_results_expire


class Command(BaseCommand):
    help = "Delete job results past their expires_at (RESULT_RETENTION), with their stored texts. Idempotent."

    def handle(self, *args, **options):
        self.stdout.write(f"{job_results_expire()} expired results deleted")
