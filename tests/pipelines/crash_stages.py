"""Test-only stages that crash, hang or blow up the process running them: for the parser pool
(``tests/pipelines/test_isolation.py``) and for worker tests, which import this module in an
``rqworker`` process. They register themselves on import, so no test module imports this one
at collection time: ``test_isolation.py``'s ``crash_stages`` fixture registers them for one
test and restores ``REGISTRY`` afterwards.
"""

import ctypes
import mmap
import os
import time

from pipelines.stages.base import StageContext, stage

_LIBC = ctypes.CDLL(None)
_LEAKED: list[mmap.mmap] = []  # memory the stages keep


def _block_forever() -> None:
    """Blocks in C code (``pause(3)``), where no Python-level timeout can reach."""
    while True:
        _LIBC.pause()


def _touched_shared_memory(mb: int) -> mmap.mmap:
    """``mb`` MiB of MAP_SHARED | MAP_ANONYMOUS memory, every page written: resident, but not
    counted by RLIMIT_DATA."""
    chunk = b"x" * (1024 * 1024)
    block = mmap.mmap(-1, mb * len(chunk))
    for offset in range(0, len(block), len(chunk)):
        block[offset : offset + len(chunk)] = chunk
    return block


@stage(name="crash_abort", description="Test only: aborts the process (SIGABRT).")
def abort(context: StageContext, params: dict) -> dict:
    os.abort()


@stage(name="crash_segfault", description="Test only: reads address 0 (SIGSEGV).")
def segfault(context: StageContext, params: dict) -> dict:
    ctypes.string_at(0)
    return {}


@stage(name="crash_hang", description="Test only: blocks in C code forever.")
def hang(context: StageContext, params: dict) -> dict:
    _block_forever()


@stage(
    name="crash_memory",
    description="Test only: allocates and touches `mb` MiB, on the heap (which RLIMIT_DATA stops), or in a shared "
    "mapping then held forever (not counted by RLIMIT_DATA: only the parent's RSS watchdog sees it).",
    params={"mb": {"type": "integer", "default": 4096}, "shared": {"type": "boolean", "default": False}},
)
def memory(context: StageContext, params: dict) -> dict:
    if not params["shared"]:
        held = [b"x" * (1024 * 1024) for _ in range(params["mb"])]  # each byte written: resident
        return {"held_mb": len(held)}
    _LEAKED.append(_touched_shared_memory(params["mb"]))
    _block_forever()


@stage(
    name="crash_leak",
    description="Test only: maps `mb` MiB of shared memory, touches it and keeps it (a leak): the process's RSS "
    "stays up after the document.",
    params={"mb": {"type": "integer", "default": 512}},
)
def leak(context: StageContext, params: dict) -> dict:
    _LEAKED.append(_touched_shared_memory(params["mb"]))
    return {}


@stage(
    name="crash_flaky",
    description="Test only: aborts the process the first time (creating the `marker` file), succeeds afterwards.",
    params={"marker": {"type": "string"}},
)
def flaky(context: StageContext, params: dict) -> dict:
    if not os.path.exists(params["marker"]):
        open(params["marker"], "w").close()  # noqa: SIM115
        os.abort()
    return {"recovered": True}


@stage(
    name="slow",
    description="Test only: sleeps `seconds` (a long stage, to act on a job while it runs).",
    params={"seconds": {"type": "number", "default": 60}},
)
def slow(context: StageContext, params: dict) -> dict:
    time.sleep(params["seconds"])
    return {"slept": params["seconds"]}


@stage(name="crash_exception", description="Test only: raises a ValueError (a bug in a stage).")
def exception(context: StageContext, params: dict) -> dict:
    raise ValueError("a bug")
