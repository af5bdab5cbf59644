"""Log lines that say which request and which job they concern (README, "Logs").

Two context variables hold the request id (set by ``audit.middleware`` for the duration of a
request: the ``X-Request-ID`` the client gets back) and the job id (set by our worker while it runs
a job, ``jobs.worker``, and by ``jobs.tasks.run_job`` under stock workers). ``ContextFilter``, on
the handlers of ``settings.LOGGING``, copies them onto every record as ``request_id`` and
``job_id``: whoever logs needs to pass nothing. ``LOG_FORMAT=json`` prints one JSON object per line
(``JsonFormatter``, from python-json-logger); ``plain`` stays readable and shows
``[req=... job=...]`` only when there is one.

A forked process (a parser child of the worker, gunicorn's workers) starts with neither: what the
parent was doing at the fork is not what the child does next.
"""

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)

# RQ jobs whose ``meta`` holds this key are housekeeping (the scheduler's, every few seconds, and
# the audit writer's): RQ's own INFO lines about them are left out (``QuietHousekeeping``); they
# log a line themselves when they did something.
HOUSEKEEPING = "housekeeping"
housekeeping: ContextVar[str | None] = ContextVar("housekeeping", default=None)  # the job's id while it runs

# Record attributes the filter adds for the plain format only (never a JSON field).
_PLAIN_ONLY = ("context",)
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_FIRST = ("timestamp", "level", "logger", "message", "request_id", "job_id")  # then the rest, as they come


@contextmanager
def bound(variable: ContextVar, value) -> Iterator[None]:
    """``variable`` is ``value`` (as a string; None: unset) for the block, as it was afterwards."""
    token = variable.set(None if value is None else str(value))
    try:
        yield
    finally:
        variable.reset(token)


def unbind(variable: ContextVar, token) -> None:
    """Puts ``variable`` back as it was before the ``set`` that gave ``token``; None if that ``set``
    happened in another context (a response closed elsewhere than where it was made)."""
    try:
        variable.reset(token)
    except ValueError:
        variable.set(None)


def _forget_context() -> None:
    request_id.set(None)
    job_id.set(None)


os.register_at_fork(after_in_child=_forget_context)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` to every record (None when unknown; a value passed in
    ``extra=`` wins), and ``context``: `` [req=... job=...]`` for the plain format, or nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id.get()
        parts = [f"req={record.request_id}"] if record.request_id else []
        if record.job_id:
            parts.append(f"job={record.job_id}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    then ``request_id`` and ``job_id`` when known, ``exception`` (the traceback) when there is one,
    and every ``extra=`` field."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "exc_info": "exception",
                                            "stack_info": "stack"})  # fmt: skip
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "taskName", *_PLAIN_ONLY])
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict) -> dict:
        ordered = {name: log_data.pop(name, None) for name in _FIRST}
        if isinstance(ordered["message"], str):  # RQ colours its messages when stdout is a terminal
            ordered["message"] = _ANSI_COLOUR.sub("", ordered["message"])
        for name in ("request_id", "job_id"):
            if ordered[name] is None:
                del ordered[name]
        ordered.update(log_data)
        return ordered


class QuietHousekeeping(logging.Filter):
    """On RQ's loggers: drops the INFO lines about housekeeping jobs (``HOUSEKEEPING``), a dozen
    every 10 seconds that say nothing happened. Warnings and errors pass. Our worker class
    (``jobs.worker``) sets ``housekeeping`` while it runs one and says itself which job it starts
    (RQ says it before the job's meta is at hand); the scheduler's "Enqueued job" lines go."""

    # RQ's line as a job starts, when the worker's ``log_job_description`` is off: our worker class
    # turns it off and says the line itself (``STARTED``), with the description, unless housekeeping.
    DEQUEUED = "Worker %s: %s: %s"
    STARTED = "Worker %s: %s: %s (%s)"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        if record.name == "rq.cron":
            return not record.getMessage().startswith("Enqueued job ")
        return record.msg != self.DEQUEUED and not housekeeping.get()
