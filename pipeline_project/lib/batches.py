"""Working through many rows in batches, each in its own transaction: cleanup and expiry services."""

from collections.abc import Callable

from django.db import transaction
from django.db.models import QuerySet


def in_locked_batches(queryset: QuerySet, fields: list[str], handle: Callable[[list[tuple]], None], *,
                      batch_size: int, progress: Callable[[int], None] | None = None) -> int:  # fmt: skip
    """Claims ``queryset``'s rows ``batch_size`` at a time (``FOR UPDATE SKIP LOCKED``: two runs at
    once never take the same rows, and a million rows never load at once) and calls
    ``handle(rows)`` with their ``fields`` as tuples, in the batch's transaction. Returns how many
    rows were handled; ``progress(n)`` after each batch."""
    handled = 0
    while True:
        with transaction.atomic():
            rows = list(queryset.select_for_update(skip_locked=True, of=("self",)).values_list(*fields)[:batch_size])
            if not rows:
                return handled
            handle(rows)
        handled += len(rows)
        if progress is not None:
            progress(len(rows))
