"""A document's parser stages in a child process: a parser that crashes, hangs in C code or
blows up memory takes down only that child (Apache Tika's forked child and watchdog).

The worker (``jobs.worker.Worker``) is long-lived and warm. Its ``ParserPool`` keeps one child
process, forked from it, so the child starts with the worker's imports, loaded models and
registered stages (as they were when it was forked), and hands it one document at a time over
a pipe. The child runs ``pipelines.runner.run_document`` and nothing else: it never touches the
worker's database connection or Redis. It reports each stage as it begins, then sends back the
``DocumentResult`` or the ``StageError`` (pickled: texts of tens of MB are fine). It is forked
from a process with threads (RQ's pubsub listener, the engine's progress ticker), so it must not
use what they may hold at that instant (connections, locks of buffered streams): it uses its pipe
and the runner only. (Logging's locks are reset across a fork by the logging module itself.)

The child ignores SIGINT and SIGTERM (a Ctrl-C or a warm shutdown of the worker lets the
document finish; only the parent kills a child, with SIGKILL), dies with the thread that forked
it (``PR_SET_PDEATHSIG``) and cannot map more than ``max_memory`` of private writable memory
(``RLIMIT_DATA``, which counts what it inherited: ``max_memory`` must be well above the
worker's own VmData).

While it waits, the parent wakes every ``tick_interval`` seconds: it calls ``tick`` (the
engine's heartbeats and cancellation check) and kills the child once the running stage is past
its ``timeout_seconds`` or the child's resident memory (pages shared with the worker included)
is above ``max_memory``. Whatever is raised in the parent meanwhile (the tick's exceptions,
RQ's job timeout, a KeyboardInterrupt) kills the child, whose state is then unknown, and
propagates. ``stop(key)``, from another thread (RQ's stop-job command), kills the child running
that key's task: ``run`` raises ``Stopped``.

Error codes (``StageError.code``; ``.stage`` is the stage that was running):

- ``parser_crashed``: the child died (a segfault, an abort, the kernel's OOM killer, ...).
- ``stage_timeout``: the stage ran past its ``timeout_seconds`` (its transient retries included).
- ``memory_limit_exceeded``: a ``MemoryError`` in the stage, or the child's RSS above ``max_memory``.
- ``internal_error``: the stage raised something other than ``StageError`` (a bug; the child
  logs its traceback).

A crash or a timeout is retried (the whole document, in a fresh child, after the stage's
backoff) only when the stage's ``retry.crashes`` is true, up to ``retry.attempts``: a document
that crashes a parser usually crashes it again. A child that dies before the document's first
stage (killed while idle) is not the document's doing: it is run once more in a fresh child.
Memory overruns are not retried. The child is replaced after ``max_tasks``
documents, after a crash or a kill, after ``memory_limit_exceeded``, and when its RSS is above
``max_memory`` after a document.
"""

import atexit
import collections
import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection  # imports multiprocessing.util: see _close_pools

from pipelines.runner import Document, DocumentResult, run_document
from pipelines.stages import StageError

logger = logging.getLogger(__name__)

_FORK = multiprocessing.get_context("fork")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_MIB = 1024 * 1024
_STOPS_KEPT = 64  # the most recent stop(key) calls remembered (a key stays stopped for its later tasks)


class Stopped(Exception):
    """stop(key) was called for the task running (or about to run) under key."""


class ParserPool:
    """One child process at a time, running one document at a time (``run`` is not reentrant;
    ``stop`` may be called from any thread)."""

    def __init__(self, *, max_tasks: int = 100, max_memory: int = 1024 * 1024 * 1024, tick_interval: float = 0.25):
        self.max_tasks, self.max_memory, self.tick_interval = max_tasks, max_memory, tick_interval
        self._lock = threading.Lock()  # guards the three below, and every signal or reap of a child
        self._child: _Child | None = None
        self._running: str | None = None  # the key of the task being run
        self._stopped: collections.deque[str] = collections.deque(maxlen=_STOPS_KEPT)
        _pools.add(self)

    @property
    def pid(self) -> int | None:
        """The current child's process id (None when there is none)."""
        child = self._child
        return None if child is None else child.process.pid

    def warm(self) -> None:
        """Starts the child now rather than at the first ``run``."""
        with self._lock:
            self._ready_child()

    def run(
        self,
        stages: list[dict],
        document: Document,
        *,
        key: str,
        on_stage: Callable[[int, str], None] | None = None,
        tick: Callable[[], None] | None = None,
    ) -> DocumentResult:
        """``run_document(stages, document)`` in the child; ``on_stage(index, name)`` and
        ``tick()`` are called here, in the caller's thread. Raises ``StageError`` (the stage's
        own, or one of the codes above), ``Stopped``, or whatever ``tick`` raised."""
        crashes: collections.Counter[int | None] = collections.Counter()
        while True:
            try:
                return self._attempt(stages, document, key, on_stage, tick)
            except _ChildLost as lost:
                crashes[lost.index] += 1
                if lost.index is None and crashes[None] == 1:  # died before the document began (killed while
                    continue  # idle, say): not the document's doing; once more, in a fresh child
                retry = None if lost.index is None else stages[lost.index]["retry"]
                if retry is None or not retry["crashes"] or crashes[lost.index] >= retry["attempts"]:
                    raise lost.error from None
                delay = retry["backoff_seconds"] * 2 ** (crashes[lost.index] - 1)
                logger.warning("%s Retrying the document in a fresh parser process in %.1f s.", lost.error, delay)
                self._pause(delay, key, tick)

    def stop(self, key: str) -> None:
        """Stops the task running under ``key`` (its ``run`` raises ``Stopped``), or the next
        one to start under it. Safe to call from any thread."""
        with self._lock:
            self._stopped.append(key)
            if self._running == key and self._child is not None:
                self._child.process.kill()

    def stopped(self, key: str) -> bool:
        """Whether ``stop(key)`` was called (for work of that key done outside the pool)."""
        with self._lock:
            return key in self._stopped

    def close(self) -> None:
        """Ends the child (a later ``run`` or ``warm`` starts a new one)."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            _end(child)

    def _attempt(self, stages, document, key, on_stage, tick) -> DocumentResult:
        with self._lock:
            if key in self._stopped:
                raise Stopped(key)
            child = self._ready_child()
            self._running = key
        try:
            try:
                child.conn.send((stages, document))
            except BrokenPipeError:
                self._died(child, key, None, None)
            reply = self._wait(child, stages, key, on_stage, tick)
        except BaseException:
            self._kill(child)
            raise
        finally:
            with self._lock:
                self._running = None
        child.tasks += 1
        if reply[0] == "result":
            self._after_task(child, recycle=False)
            return reply[1]
        code, message, stage, transient, record = reply[1:]
        self._after_task(child, recycle=code == "memory_limit_exceeded")
        error = StageError(code, message, transient=transient)
        error.stage, error.record = stage, record
        raise error

    def _wait(self, child, stages, key, on_stage, tick) -> tuple:
        """The child's reply to the task just sent, with the parent's watchdog duties meanwhile."""
        index = name = deadline = None
        while True:
            if child.conn.poll(self.tick_interval):
                try:
                    message = child.conn.recv()
                except EOFError:
                    self._died(child, key, index, name)
                if message[0] != "stage":
                    return message
                index, name = message[1:]
                deadline = time.monotonic() + stages[index]["timeout_seconds"]
                if on_stage is not None:
                    on_stage(index, name)
            else:
                with self._lock:
                    alive = child.process.is_alive()
                if not alive:  # died, though something (a grandchild?) holds its end of the pipe
                    self._died(child, key, index, name)
            if tick is not None:
                tick()
            if deadline is not None and time.monotonic() > deadline:
                self._kill(child)
                seconds = stages[index]["timeout_seconds"]
                raise _ChildLost(
                    _error("stage_timeout", f"The {name} stage ran past its {seconds} s timeout.", name), index
                )
            if _rss(child.process.pid) > self.max_memory:
                self._kill(child)
                raise _memory_error(name, self.max_memory)

    def _died(self, child, key, index, name) -> None:
        self._kill(child)
        self._check_stopped(key)
        code = child.process.exitcode
        how = "no exit status" if code is None else f"signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
        where = f"during the {name} stage" if name else "before its first stage"
        raise _ChildLost(_error("parser_crashed", f"The parser process died ({how}) {where}.", name), index)

    def _pause(self, seconds: float, key: str, tick) -> None:
        """Sleeps ``seconds``, ticking, unless stopped meanwhile."""
        until = time.monotonic() + seconds
        while True:
            self._check_stopped(key)
            if tick is not None:
                tick()
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(self.tick_interval, remaining))

    def _check_stopped(self, key: str) -> None:
        with self._lock:
            if key in self._stopped:
                raise Stopped(key)

    def _ready_child(self) -> "_Child":
        """The live child, started if need be. Called with the lock held."""
        if self._child is not None and not self._child.process.is_alive():
            process = self._child.process
            logger.warning("parser process %d died while idle (exit code %s)", process.pid, process.exitcode)
            self._child.conn.close()
            self._child = None
        if self._child is None:
            self._child = _spawn(self.max_memory)
        return self._child

    def _after_task(self, child: "_Child", *, recycle: bool) -> None:
        if recycle or child.tasks >= self.max_tasks or _rss(child.process.pid) > self.max_memory:
            with self._lock:
                if self._child is child:
                    self._child = None
            _end(child)

    def _kill(self, child: "_Child") -> None:
        """SIGKILLs ``child`` and reaps it (it is then no longer the pool's child)."""
        with self._lock:
            if self._child is child:
                self._child = None
            child.process.kill()
        child.process.join(5)
        child.conn.close()


@dataclass
class _Child:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    tasks: int = 0


class _ChildLost(Exception):
    """The child crashed or was killed for its stage's timeout: retried if the stage allows it."""

    def __init__(self, error: StageError, index: int | None):
        super().__init__(error.message)
        self.error, self.index = error, index


def _spawn(max_memory: int) -> _Child:
    inherited = _vm_data()
    if inherited > max_memory // 2:
        logger.error(
            "the parser process inherits %d MiB of data from the worker: its memory limit (%d MiB, "
            "WORKER_CHILD_MAX_MEMORY) leaves its documents little room",
            inherited // _MIB,
            max_memory // _MIB,
        )
    conn, child_conn = _FORK.Pipe()
    process = _FORK.Process(target=_child_main, args=(child_conn, conn, os.getpid(), max_memory), name="parser")
    process.start()
    child_conn.close()
    logger.info("parser process %d started", process.pid)
    return _Child(process, conn)


def _end(child: _Child) -> None:
    """Asks ``child`` to exit, kills it if it does not at once, and reaps it."""
    try:
        child.conn.send(None)
    except OSError:
        pass  # already gone
    child.process.join(1)
    if child.process.is_alive():
        child.process.kill()
        child.process.join(5)
    child.conn.close()


def _child_main(conn: Connection, parent_conn: Connection, parent_pid: int, max_memory: int) -> None:
    """The child: runs the tasks it receives until EOF or ``None``."""
    parent_conn.close()  # the parent's end: the child sees EOF when the parent goes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl
            os._exit(1)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(
        resource.RLIMIT_DATA, (max_memory if hard == resource.RLIM_INFINITY else min(max_memory, hard), hard)
    )
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(_run_task(conn, *task, max_memory))


def _run_task(conn: Connection, stages: list[dict], document: Document, max_memory: int) -> tuple:
    """One document, in the child: the reply to send."""
    current: str | None = None

    def began(index: int, name: str) -> None:
        nonlocal current
        current = name
        conn.send(("stage", index, name))

    try:
        return ("result", run_document(stages, document, on_stage=began))
    except StageError as error:
        return ("error", error.code, error.message, error.stage, error.transient, error.record)
    except MemoryError:  # what the stage held is freed by now
        error = _memory_error(current, max_memory)
    except Exception as exc:
        logger.exception("parser process: unexpected error in stage %s", current)
        error = _error("internal_error", f"Unexpected error in stage {current}: {type(exc).__name__}.", current)
    return ("error", error.code, error.message, error.stage, False, {})


def _error(code: str, message: str, stage: str | None) -> StageError:
    error = StageError(code, message)
    error.stage = stage
    return error


def _memory_error(stage: str | None, max_memory: int) -> StageError:
    message = f"The {stage} stage went over the parser process's memory limit ({max_memory // _MIB} MiB)."
    return _error("memory_limit_exceeded", message, stage)


def _rss(pid: int) -> int:
    """``pid``'s resident memory in bytes (0 when it cannot be read: gone, or not Linux)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _vm_data() -> int:
    """This process's private writable memory (VmData) in bytes, which a forked child inherits and
    ``RLIMIT_DATA`` counts (0 when it cannot be read)."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmData:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


_pools: "weakref.WeakSet[ParserPool]" = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    """Ends the children still running at exit. multiprocessing's own exit hook joins every
    child (and a child waiting for its next task never exits by itself); registered after it
    (``multiprocessing.util`` is imported above), this hook runs before it."""
    for pool in list(_pools):
        pool.close()
