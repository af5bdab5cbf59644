"""The parser pool with real child processes: real stages, and stages that really abort,
segfault, hang in C code or blow up memory (``tests/pipelines/crash_stages.py``)."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from pipelines.isolation import ParserPool, Stopped
from pipelines.runner import Document
from pipelines.stages import StageError
from pipelines.validation import stage_spec

MIB = 1024 * 1024
PROSE = "The quarterly report describes the results of the company and the outlook for the year.\n" * 20
TEXT_STAGES = [stage_spec(name) for name in ("detect", "extract_text", "quality")]
CRASH_STAGES = "tests.pipelines.crash_stages"


def spec(name: str, **entry) -> dict:
    return stage_spec(name, entry)


@pytest.fixture
def make_pool(crash_stages):
    pools = []

    def make(**options) -> ParserPool:
        pools.append(ParserPool(**{"tick_interval": 0.05, **options}))
        return pools[-1]

    yield make
    for pool in pools:
        pool.close()
    assert zombies() == []
    assert [child for child in multiprocessing.active_children() if child.name == "parser"] == []


@pytest.fixture
def pool(make_pool) -> ParserPool:
    return make_pool()


@pytest.fixture
def document(tmp_path) -> Document:
    path = tmp_path / "report.txt"
    path.write_text(PROSE)
    return Document(str(path), "report.txt", path.stat().st_size)


def state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return None


def zombies() -> list[int]:
    """This process's children that died and were never reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split() if entry.name.isdigit() else []
        except OSError:
            continue
        if fields and fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(entry.name))
    return found


def memory_in_use() -> int:
    """What a child forked now starts with, as the pool's two limits count it: ``RLIMIT_DATA``
    counts the inherited private writable memory (VmData), the watchdog the inherited
    resident pages (VmRSS)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return max(int(status[field].split()[0]) for field in ("VmData", "VmRSS")) * 1024


def resident(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_it_runs_a_document_in_a_child_process(pool, document):
    seen = []
    result = pool.run(TEXT_STAGES, document, key="job-1", on_stage=lambda index, name: seen.append((index, name)))
    assert seen == [(0, "detect"), (1, "extract_text"), (2, "quality")]
    assert result.outputs["extract_text"]["text"].strip() == PROSE.strip()
    assert result.outputs["quality"]["words"] == len(PROSE.split())
    assert set(result.record) == {"detect", "extract_text", "quality"}
    assert "text" not in result.record["extract_text"]["output"]
    assert pool.pid not in (None, os.getpid())


def test_a_stage_error_comes_back_with_its_stage_and_record(pool, tmp_path):
    path = tmp_path / "image.gif"
    path.write_bytes(b"GIF89a" + bytes(32))
    pool.warm()
    child = pool.pid
    with pytest.raises(StageError) as caught:
        pool.run([spec("checksum"), spec("detect")], Document(str(path), "image.gif", 38), key="job-1")
    assert (caught.value.code, caught.value.stage) == ("unsupported_type", "detect")
    assert list(caught.value.record) == ["checksum"]
    assert pool.pid == child  # an ordinary failure: the child lives on


def test_an_unexpected_exception_is_an_internal_error(pool, document):
    pool.warm()
    child = pool.pid
    with pytest.raises(StageError) as caught:
        pool.run([spec("detect"), spec("crash_exception")], document, key="job-1")
    assert caught.value.code == "internal_error" and caught.value.stage == "crash_exception"
    assert caught.value.message == "Unexpected error in stage crash_exception: ValueError."
    assert pool.pid == child


def test_the_child_serves_many_documents_then_is_replaced_after_max_tasks(make_pool, document):
    pool = make_pool(max_tasks=3)
    pool.warm()
    first = pool.pid
    children = []
    for number in range(5):
        pool.run(TEXT_STAGES, document, key=f"job-{number}", on_stage=lambda index, name: children.append(pool.pid))
    per_document = [set(children[start : start + 3]) for start in range(0, 15, 3)]
    assert per_document[:3] == [{first}] * 3
    assert per_document[3] == per_document[4] and per_document[3] != {first}
    assert state(first) is None  # ended and reaped


@pytest.mark.parametrize("stage, signal_name", [("crash_abort", "SIGABRT"), ("crash_segfault", "SIGSEGV")])
def test_a_crash_fails_the_document_not_the_pool(pool, document, stage, signal_name):
    pool.warm()
    crashed = pool.pid
    began = []
    with pytest.raises(StageError) as caught:
        pool.run([spec("detect"), spec(stage)], document, key="job-1", on_stage=lambda index, name: began.append(name))
    assert caught.value.code == "parser_crashed" and caught.value.stage == stage
    assert caught.value.message == f"The parser process died (signal {signal_name}) during the {stage} stage."
    assert began == ["detect", stage]  # not retried: retry.crashes is off by default
    assert state(crashed) is None and pool.pid is None

    result = pool.run(TEXT_STAGES, document, key="job-2")
    assert result.outputs["quality"]["words"] and pool.pid != crashed


def test_a_stage_past_its_timeout_is_killed(pool, document):
    pool.warm()
    hung = pool.pid
    with pytest.raises(StageError) as caught:
        pool.run([spec("detect"), spec("crash_hang", timeout_seconds=1)], document, key="job-1")
    assert (caught.value.code, caught.value.stage) == ("stage_timeout", "crash_hang")
    assert caught.value.message == "The crash_hang stage ran past its 1 s timeout."
    assert state(hung) is None
    assert pool.run(TEXT_STAGES, document, key="job-2").outputs["quality"]["words"]


@pytest.mark.parametrize(
    "shared, tick_interval",
    [(False, 60), (True, 0.05)],  # the heap: RLIMIT_DATA alone (no watchdog tick comes in time)
    ids=["heap-rlimit", "shared-rss-watchdog"],
)
def test_memory_above_the_limit_fails_the_document_and_replaces_the_child(make_pool, document, shared, tick_interval):
    limit = memory_in_use() + 300 * MIB
    pool = make_pool(max_memory=limit, tick_interval=tick_interval)
    pool.warm()
    blown = pool.pid
    mb = max(1024, (limit - resident(blown)) // MIB + 300)  # over the limit by either count
    stages = [spec("detect"), spec("crash_memory", params={"mb": mb, "shared": shared})]
    with pytest.raises(StageError) as caught:
        pool.run(stages, document, key="job-1")
    assert (caught.value.code, caught.value.stage) == ("memory_limit_exceeded", "crash_memory")
    assert "memory limit" in caught.value.message
    assert state(blown) is None
    assert pool.run(TEXT_STAGES, document, key="job-2").outputs["quality"]["words"]


def test_a_child_still_above_the_limit_after_a_document_is_replaced(make_pool, document):
    limit = memory_in_use() + 300 * MIB
    pool = make_pool(max_memory=limit, tick_interval=60)  # no watchdog tick meanwhile
    pool.warm()
    leaky = pool.pid
    over = (limit - resident(leaky)) // MIB + 100  # the child's RSS can be well below the parent's VmData
    assert pool.run([spec("crash_leak", params={"mb": over})], document, key="job-1").outputs == {"crash_leak": {}}
    assert pool.pid is None and state(leaky) is None


def test_a_crash_is_retried_in_a_fresh_child_when_the_stage_allows_it(pool, document, tmp_path):
    marker = tmp_path / "crashed-once"
    retry = {"crashes": True, "attempts": 2, "backoff_seconds": 0}
    stages = [spec("detect"), spec("crash_flaky", params={"marker": str(marker)}, retry=retry)]
    began = []
    result = pool.run(stages, document, key="job-1", on_stage=lambda index, name: began.append((name, pool.pid)))
    assert result.outputs["crash_flaky"] == {"recovered": True} and marker.exists()
    assert [name for name, _ in began] == ["detect", "crash_flaky", "detect", "crash_flaky"]
    assert began[1][1] != began[2][1]


def test_crash_retries_stop_after_the_stages_attempts(pool, document):
    began = []
    stages = [spec("crash_abort", retry={"crashes": True, "attempts": 3, "backoff_seconds": 0.1})]
    with pytest.raises(StageError) as caught:
        pool.run(stages, document, key="job-1", on_stage=lambda index, name: began.append(name))
    assert caught.value.code == "parser_crashed" and began == ["crash_abort"] * 3


def test_stop_kills_the_task_running_under_its_key(pool, document):
    hanging = threading.Event()

    def on_stage(index, name):
        if name == "crash_hang":
            hanging.set()

    def cancel():  # as RQ's pubsub thread does on a stop-job command
        hanging.wait(60)
        pool.stop("job-1")

    thread = threading.Thread(target=cancel)
    thread.start()
    with pytest.raises(Stopped):
        pool.run([spec("detect"), spec("crash_hang")], document, key="job-1", on_stage=on_stage)
    thread.join()
    assert pool.run(TEXT_STAGES, document, key="job-2").outputs["quality"]["words"]
    with pytest.raises(Stopped):  # the key stays stopped: the job's next document does not start
        pool.run(TEXT_STAGES, document, key="job-1")


def test_a_stop_before_the_task_stops_it_and_a_stale_stop_changes_nothing(pool, document):
    pool.stop("job-1")
    with pytest.raises(Stopped):
        pool.run(TEXT_STAGES, document, key="job-1")
    pool.stop("job-0")
    pool.warm()
    child = pool.pid
    result = pool.run(TEXT_STAGES, document, key="job-2", on_stage=lambda index, name: pool.stop("job-1"))
    assert result.outputs["quality"]["words"] and pool.pid == child


class Cancelled(Exception):
    pass


def test_an_exception_from_tick_kills_the_child_and_propagates(pool, document):
    hanging = []

    def tick():
        if hanging:
            raise Cancelled

    with pytest.raises(Cancelled):
        pool.run([spec("crash_hang")], document, key="job-1", on_stage=lambda i, n: hanging.append(pool.pid), tick=tick)
    assert state(hanging[0]) is None and pool.pid is None
    assert pool.run(TEXT_STAGES, document, key="job-2").outputs["quality"]["words"]


def test_rq_job_timeout_in_the_parent_kills_the_child(pool, document):
    hanging = []
    with pytest.raises(JobTimeoutException), UnixSignalDeathPenalty(1, JobTimeoutException, job_id="job-1"):
        pool.run([spec("crash_hang")], document, key="job-1", on_stage=lambda i, n: hanging.append(pool.pid))
    assert state(hanging[0]) is None and pool.pid is None


def test_the_child_ignores_sigint_and_sigterm(pool, document):
    sent = []

    def on_stage(index, name):
        os.kill(pool.pid, signal.SIGINT)
        os.kill(pool.pid, signal.SIGTERM)
        sent.append(time.monotonic())

    def tick():  # a second later, the child still runs its stage: give up on it
        if sent and time.monotonic() > sent[0] + 1:
            raise Cancelled

    with pytest.raises(Cancelled):  # not StageError("parser_crashed")
        pool.run([spec("crash_hang")], document, key="job-1", on_stage=on_stage, tick=tick)


WORKER = """
import os, signal, sys
from pipelines.isolation import ParserPool
from pipelines.runner import Document
from pipelines.validation import stage_spec
import tests.pipelines.crash_stages

def killed(index, name):
    print(pool.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

pool = ParserPool()
if sys.argv[1] == "killed":  # while its child is busy (an idle child also sees its pipe close)
    pool.run([stage_spec("crash_hang")], Document(os.devnull, "empty", 0), key="job-1", on_stage=killed)
pool.warm()
print(pool.pid, flush=True)
"""


@pytest.mark.parametrize("end", ["killed", "exits"])
def test_the_child_ends_with_its_worker(end):
    """A worker killed outright takes its child along, even one busy in C code
    (PR_SET_PDEATHSIG); a worker that exits without closing its pool is not held up by its
    child (multiprocessing joins its children at exit), which ends too."""
    worker = subprocess.run(
        [sys.executable, "-c", WORKER, end], cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=30
    )
    assert worker.returncode == (-signal.SIGKILL if end == "killed" else 0), worker.stderr
    child = int(worker.stdout)
    deadline = time.monotonic() + 30
    while state(child) not in (None, "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state(child) in (None, "Z", "X")  # gone, or dead and waiting for init to reap it
