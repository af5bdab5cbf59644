"""The one hook point between the apps that change things and the apps that listen.

``jobs`` and ``pipelines`` announce what happened (``job.completed``, ``pipeline.updated``, ...)
here; ``webhooks`` listens (registered in its ``AppConfig.ready``), and ``audit`` records the
system actions among them (``job.worker_lost``, ``job.results_expired``). Neither side imports the
other, and a new listener (metrics) joins without touching the announcers.

Events are announced **inside the transaction of the change**: a listener writes what it keeps
in that same transaction (webhooks: one delivery row per receiver, the outbox), so an event is
committed with its change or not at all, and anything sent out goes after commit.

An announcer whose change is a single statement, outside any transaction (``job_create``), asks
first whether anyone will write: ``Announcement(events)`` reads what the listeners need (one
query for webhooks) and is falsy when nothing will be written; only then does the change need
a transaction around it and ``announcement.record()`` inside.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from django.utils import timezone


def _nothing() -> dict:
    return {}


@dataclass(frozen=True, eq=False)
class Event:
    type: str  # e.g. "job.completed"; system actions too ("job.worker_lost"), which the audit trail records
    organization_id: Any
    # The object's API representation after the change, for listeners that send it; called at
    # most once per event (announcers share one renderer between the events of one change).
    render: Callable[[], dict] = _nothing
    callback_url: str = ""  # a URL the object itself asked to be told at (a job's webhook_url)
    occurred_at: datetime = field(default_factory=timezone.now)
    resource_id: str = ""  # the object's id (for the audit trail)
    details: dict = field(default_factory=dict)  # what a system action did (for the audit trail)

    @cached_property
    def data(self) -> dict:
        return self.render()


class Listener(Protocol):
    def plan(self, events: list[Event]) -> object | None:
        """What this listener will write for ``events`` (all of one organization), read now; None: nothing."""

    def record(self, plan: object, events: list[Event]) -> None:
        """Writes it, in the caller's transaction."""


_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


class Announcement:
    """``events`` of one organization and what each listener will write for them."""

    def __init__(self, events: Iterable[Event]):
        self.events = list(events)
        if len({event.organization_id for event in self.events}) > 1:
            raise ValueError("an announcement holds the events of one organization")
        self.plans = []
        for listener in _listeners if self.events else ():
            plan = listener.plan(self.events)
            if plan is not None:
                self.plans.append((listener, plan))

    def __bool__(self) -> bool:
        return bool(self.plans)

    def record(self) -> None:
        for listener, plan in self.plans:
            listener.record(plan, self.events)


def announce(events: Iterable[Event]) -> None:
    """Records ``events`` with every listener. Call it inside the transaction of the change."""
    by_organization: dict[Any, list[Event]] = {}
    for event in events:
        by_organization.setdefault(event.organization_id, []).append(event)
    for group in by_organization.values():
        Announcement(group).record()
