import uuid

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from audit import chain
from audit.models import AuditChainHead


class Command(BaseCommand):
    help = (
        "Checks the audit trail's hash chains (each organization's, and the one of records of no organization): "
        "exits non-zero naming the first record edited or missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", metavar="SLUG", help="Check this organization's chain only.")

    def handle(self, *args, organization=None, **options):
        if organization is not None:
            found = Organization.objects.filter(slug=organization).values_list("pk", flat=True).first()
            if found is None:
                raise CommandError(f"No organization has the slug {organization!r}.")
            chains = [chain.chain_of(found)]
        else:
            chains = list(AuditChainHead.objects.order_by("chain").values_list("chain", flat=True))
        names = dict(Organization.objects.filter(pk__in=[c for c in chains if c != chain.NO_ORGANIZATION])
                     .values_list("pk", "slug"))  # fmt: skip
        broken = []
        for key in chains:
            label = "(no organization)" if key == chain.NO_ORGANIZATION else names.get(_uuid(key), key)
            checked, found_break = chain.verify(key)
            if found_break is None:
                self.stdout.write(f"{label}: {checked} records, chain intact")
            else:
                broken.append(found_break)
                self.stderr.write(f"{label}: BROKEN after {checked} good records: {found_break}")
        if broken:
            raise CommandError(f"{len(broken)} chain(s) broken; first: {broken[0]}")


def _uuid(value: str):
    try:
        return uuid.UUID(value)
    except ValueError:
        return value
