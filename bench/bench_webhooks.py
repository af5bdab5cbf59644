"""Webhook delivery throughput: our workers delivering real outbox rows vs a bare requests loop.

- Ours, as deployed: BENCH_DELIVERIES (2000) ``WebhookDelivery`` rows, pending and due, for one
  subscription whose URL is a local receiver, each carrying a real ``job.completed`` message (a
  text job run through the engine, as ``GET /api/v1/jobs/{id}`` shows it). Once 2
  ``manage.py rqworker webhooks --worker-class jobs.worker.Worker`` processes are up and idle
  (their start-up left out), workers are kicked as the outbox would after committing them
  (``webhooks.queueing.kick``: one deliver-what-is-due RQ job per batch of 50), and they send
  them: claim a batch in one statement (a lease), read its secrets, sign and POST each on a kept
  connection through the SSRF guard (``SSRF_ALLOWED_NETWORKS=127.0.0.1/32`` lets it reach
  loopback), record the batch's successes in one statement; a full batch kicks its continuation.
  Deliveries/s is N over the drain, from the first RQ job started to the last ended (RQ's job
  hashes); the wall time from the kick to the last ``delivered_at`` is printed beside it.
- Reference: 2 forked processes, each a bare loop of ``requests.Session().post`` over half of the
  same messages (the same bytes, the same signed Standard Webhooks headers, precomputed), timed
  from the first post to the last answer.

The receiver, the same for both, is not the bottleneck: BENCH_RECEIVERS (2) asyncio processes on one
port (SO_REUSEPORT) speaking just enough HTTP/1.1, keep-alive included, to answer 200 and append
each ``webhook-id`` to a file per process (one of them alone serves the reference at ~3,700
posts/s, for 0.05 ms of CPU per post; gunicorn's gthread workers capped the reference at ~1,400
when both of its connections landed on one worker). After every run the bench checks the receiver
got each message exactly once, and that all of ours succeeded in the database. CPU per message of
the senders (our workers, or the loop's processes) and of the receiver is printed. Rounds are
interleaved (ours, reference, ours, ...); medians are compared. Target: ours / reference >= 0.5.

Then where a delivery's time goes: our worker class's loop in this process, batch after batch
(SQL statements and Redis round trips per batch and per delivery; wall and CPU time of RQ's part,
the claim, the secrets, the POSTs and the record).

    make bench-webhooks    # BENCH_DELIVERIES=2000 BENCH_ROUNDS=3 BENCH_RECEIVERS=2
"""

import asyncio
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from common import (
    ENV,
    OUR_WORKER,
    bench_api_key,
    finish_worker,
    free_port,
    prose,
    rq_window,
    setup_django,
    start_worker,
    temporary_media,
    verdict,
)

N = int(os.environ.get("BENCH_DELIVERIES", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RECEIVERS = int(os.environ.get("BENCH_RECEIVERS", "2"))
TARGET = 0.5
TICKS = os.sysconf("SC_CLK_TCK")


# --- The receiver ---------------------------------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class Receiver(asyncio.Protocol):
    """Just enough HTTP/1.1 for webhook POSTs, keep-alive included: answers 200 to each request
    and appends its ``webhook-id`` to this process's log (one line, one write)."""

    log: int  # this process's file descriptor

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes):
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")[1:]
            headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
            size = end + 4 + int(headers.get("content-length", 0))
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            if "webhook-id" in headers:
                os.write(self.log, f"{headers['webhook-id']}\n".encode())
            self.transport.write(OK)


def serve(port: int, directory: Path) -> None:
    async def run():
        server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", port, reuse_port=True)
        Receiver.log = os.open(directory / str(os.getpid()), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        await server.serve_forever()

    asyncio.run(run())


@contextmanager
def receiving(directory: Path):
    """BENCH_RECEIVERS processes serving one port (SO_REUSEPORT); yields the URL to post to."""
    port = free_port()
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=serve, args=(port, directory), daemon=True) for _ in range(RECEIVERS)]
    for process in processes:
        process.start()
    try:
        while len(list(directory.iterdir())) < RECEIVERS:
            if any(process.exitcode is not None for process in processes):
                raise RuntimeError("the receiver did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        for process in processes:
            process.terminate()
            process.join()


class Received:
    """What the receiver logged since the last ``take``: message ids, and its processes' CPU seconds."""

    def __init__(self, directory: Path):
        self.directory, self.offsets, self.cpu = directory, {}, {}

    def take(self) -> tuple[list[str], float]:
        ids, cpu = [], 0.0
        for path in self.directory.iterdir():
            with path.open("rb") as file:
                file.seek(self.offsets.get(path, 0))
                ids += file.read().decode().split()
                self.offsets[path] = file.tell()
            now = cpu_seconds(int(path.name))
            cpu, self.cpu[path] = cpu + now - self.cpu.get(path, 0.0), now
        return ids, cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def check_received(ids: list[str], expected: set[str], label: str) -> None:
    if len(ids) != len(expected) or set(ids) != expected:
        raise RuntimeError(f"{label}: the receiver got {len(ids)} messages, {len(set(ids) & expected)} of the "
                           f"{len(expected)} expected ids")  # fmt: skip


# --- Ours: rows in the outbox, 2 workers of our class --------------------------------------------


def job_message(principal) -> dict:
    """A ``job.completed`` message for a real text job, run to completion in this process."""
    from django.conf import settings
    from django.utils import timezone

    from jobs import engine
    from jobs.api.serializers import JobDetailSerializer
    from jobs.models import Job
    from jobs.services import job_create

    job, _ = job_create(principal=principal, source_type="text", text=prose(1, 8)[1], priority=2,
                        metadata={"customer": "acme", "batch": 42})  # fmt: skip
    assert engine.job_process(str(job.id)) == "completed"
    data = JobDetailSerializer(Job.objects.select_related("pipeline", "pipeline_version").get(pk=job.pk)).data
    assert data["links"]["self"].startswith(settings.PUBLIC_URL)
    return {"type": "job.completed", "timestamp": timezone.now().isoformat().replace("+00:00", "Z"), "data": data}


def outbox(subscription, message: dict, count: int = N) -> list:
    """``count`` due deliveries of ``message`` to ``subscription``, each its own message id, in the database."""
    from django.utils import timezone

    from webhooks import signing
    from webhooks.models import DeliveryStatus, WebhookDelivery

    now = timezone.now()
    rows = [
        WebhookDelivery(
            organization_id=subscription.organization_id,
            subscription=subscription,
            url=subscription.url,
            event_type=message["type"],
            payload=message,
            message_id=signing.new_message_id(),
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
        )
        for _ in range(count)
    ]
    return WebhookDelivery.objects.bulk_create(rows, batch_size=1000)


def wait_idle(workers: list, count: int, timeout: float = 120) -> None:
    from rq import Worker

    from pipeline_project.lib.redis import get_redis

    deadline = time.monotonic() + timeout
    while sum(worker.get_state() == "idle" for worker in Worker.all(connection=get_redis())) < count:
        if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
            for worker in workers:
                worker.kill()
                finish_worker(worker)  # raises with its output
            raise RuntimeError("the workers did not start")
        time.sleep(0.1)


def ours(subscription, message: dict, received: Received) -> dict:
    """One round: N deliveries sent by 2 workers of our class; returns the figures."""
    from django.db.models import Max
    from django.utils import timezone

    from pipeline_project.lib.redis import get_redis
    from webhooks import queueing
    from webhooks.delivery import OPEN
    from webhooks.models import DeliveryStatus, WebhookDelivery

    get_redis().flushdb()  # nothing left from the round before
    rows = outbox(subscription, message)
    workers = [start_worker([queueing.QUEUE], OUR_WORKER, burst=False) for _ in range(2)]
    try:
        wait_idle(workers, 2)
        received.take()
        cpu = sum(cpu_seconds(worker.pid) for worker in workers)
        kicked = timezone.now()
        queueing.kick(queueing.kicks_for(len(rows)))  # as the outbox does once they commit
        deadline = time.monotonic() + 600
        pending = WebhookDelivery.objects.filter(status__in=OPEN)  # only this round's: earlier ones all succeeded
        while pending.exists() or not settled():
            if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
                raise RuntimeError(f"{pending.count()} deliveries still open")
            time.sleep(0.1)
        cpu = sum(cpu_seconds(worker.pid) for worker in workers) - cpu
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            finish_worker(worker, timeout=60)
    done = WebhookDelivery.objects.filter(pk__in=[row.id for row in rows], status=DeliveryStatus.SUCCEEDED)
    if (succeeded := done.count()) != N:
        raise RuntimeError(f"only {succeeded} of {N} deliveries succeeded")
    ids, receiver_cpu = received.take()
    check_received(ids, {row.message_id for row in rows}, "ours")
    wall = (done.aggregate(last=Max("delivered_at"))["last"] - kicked).total_seconds()
    jobs = kicks()
    return {"rate": N / rq_window(jobs), "wall": N / wall, "cpu": cpu, "receiver": receiver_cpu, "rows": rows,
            "jobs": len(jobs)}  # fmt: skip


def kicks() -> list[str]:
    """The ids of every deliver-what-is-due job run this round (continuations included)."""
    from rq import Queue

    from pipeline_project.lib.redis import get_redis
    from webhooks import queueing

    return Queue(queueing.QUEUE, connection=get_redis()).finished_job_registry.get_job_ids()


def settled() -> bool:
    """No kick waiting or running (a continuation may still run once every row is delivered)."""
    from rq import Queue

    from pipeline_project.lib.redis import get_redis
    from webhooks import queueing

    queue = Queue(queueing.QUEUE, connection=get_redis())
    return queue.count == 0 and queue.started_job_registry.count == 0


# --- Reference: a bare requests.Session loop in 2 processes --------------------------------------


def _post_loop(url: str, messages: list, barrier, results) -> None:
    import requests

    try:
        session = requests.Session()
        barrier.wait()
        started, cpu = time.time(), time.process_time()
        failures = sum(session.post(url, data=body, headers=headers).status_code != 200 for body, headers in messages)
        results.put((started, time.time(), time.process_time() - cpu, failures))
    except Exception as exc:
        results.put(repr(exc))


def reference(url: str, messages: list, received: Received) -> dict:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_post_loop, args=(url, messages[half::2], barrier, results)) for half in (0, 1)]
    received.take()
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    if any(isinstance(outcome, str) or outcome[3] for outcome in outcomes):
        raise RuntimeError(f"reference: {outcomes}")
    ids, receiver_cpu = received.take()
    check_received(ids, {headers["webhook-id"] for _, headers in messages}, "reference")
    seconds = max(outcome[1] for outcome in outcomes) - min(outcome[0] for outcome in outcomes)
    return {"rate": len(messages) / seconds, "cpu": sum(outcome[2] for outcome in outcomes), "receiver": receiver_cpu}


def signed(rows: list, secret: str) -> list[tuple[bytes, dict]]:
    """The bytes and headers our workers sent for ``rows`` (signed now)."""
    from webhooks import signing
    from webhooks.delivery import message_body

    now = int(time.time())
    return [(body := message_body(row.payload), signing.headers([secret], row.message_id, now, body)) for row in rows]


# --- Where a delivery's time goes ---------------------------------------------------------------


def breakdown(subscription, message: dict, reference_rate: float) -> None:
    """Our worker class's loop in this process, batch after batch, twice over BENCH_DELIVERIES / 2
    deliveries: SQL statements and Redis round trips counted, then (uncounted) wall and CPU time
    per part, the worker's start-up (timed on an empty queue) left out."""
    from bench_engine import counting
    from rq import Queue

    from jobs.worker import Worker
    from pipeline_project.lib.redis import get_redis
    from webhooks import delivery, queueing

    count = max(N // 2, 1)
    patched = ("deliver_due", "_claim", "_batch_secrets", "_send_all", "pinned_request", "_record_successes")
    parts = {name: [0.0, 0.0] for name in (*patched, "total", "start-up")}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                parts[name][0] += time.perf_counter() - wall
                parts[name][1] += time.process_time() - cpu

        return wrapper

    def run() -> int:
        """Drains the queue with a worker of our class; returns the RQ jobs it ran."""
        queue = Queue(queueing.QUEUE, connection=get_redis())
        before = queue.finished_job_registry.count
        Worker([queue], connection=get_redis()).work(burst=True, logging_level="WARNING")
        return queue.finished_job_registry.count - before

    def kick():
        outbox(subscription, message, count)
        queueing.kick(queueing.kicks_for(count))

    run()  # nothing queued: imports, warm-up
    timed("start-up", run)()  # a worker's start and stop (its parser processes), taken out of the total below
    kick()
    with counting() as counter:
        jobs = run()
    kick()
    originals = {name: getattr(delivery, name) for name in patched}
    for name, function in originals.items():
        setattr(delivery, name, timed(name, function))
    try:
        timed("total", run)()
    finally:
        for name, function in originals.items():
            setattr(delivery, name, function)
    batches = -(-count // queueing.BATCH)
    parts["total"] = [a - b for a, b in zip(parts["total"], parts["start-up"], strict=True)]
    rq = [a - b for a, b in zip(parts["total"], parts["deliver_due"], strict=True)]
    table = {
        "RQ: dequeue, job bookkeeping, worker loop, kicks": rq,
        "claim (one statement)": parts["_claim"],
        "secrets (one query, Fernet)": parts["_batch_secrets"],
        "sign and POST (_send_all)": parts["_send_all"],
        "  of which pinned_request (check, send, answer)": parts["pinned_request"],
        "record the successes (two statements)": parts["_record_successes"],
        "total": parts["total"],
    }
    print(f"\nOne worker of our class in this process, {count} deliveries in {batches} batches of "
          f"{queueing.BATCH} ({jobs} RQ jobs, continuations included): per batch {counter.statements / batches:.1f} "
          f"SQL statements, {counter.redis / batches:.1f} Redis round trips; per delivery "
          f"{counter.statements / count:.2f} statements, {counter.redis / count:.2f} round trips")  # fmt: skip
    print(f"  {'':<50}{'wall ms':>9}{'CPU ms':>9}   (per delivery)")
    for label, (wall, cpu) in table.items():
        print(f"  {label:<50}{wall / count * 1000:>9.3f}{cpu / count * 1000:>9.3f}")
    print(f"  (the reference: {2 / reference_rate * 1000:.2f} ms per post in each of its 2 processes)")


# --- Main -------------------------------------------------------------------------------------------


def main() -> int:
    directory = Path(tempfile.mkdtemp(prefix="bench-receiver-"))
    media = temporary_media()
    ENV["SSRF_ALLOWED_NETWORKS"] = "127.0.0.1/32"  # the receiver is on loopback
    setup_django()
    from django.db import connections

    try:
        connections.close_all()  # nothing shared with the processes forked below
        with receiving(directory) as url:
            from accounts.principal import Principal
            from accounts.roles import ROLE_PERMISSIONS
            from webhooks.delivery import message_body
            from webhooks.services import subscription_create

            _, user, organization = bench_api_key()
            principal = Principal(user=user, organization=organization, role="admin",
                                  permissions=ROLE_PERMISSIONS["admin"])  # fmt: skip
            message = job_message(principal)
            subscription = subscription_create(principal=principal, url=url, events=["job.completed"])
            received = Received(directory)
            print(
                f"{N} deliveries of a {len(message_body(message))}-byte job.completed message per run; "
                f"receiver: {RECEIVERS} asyncio processes"
            )
            runs = {"ours": [], "reference": []}
            for round_ in range(ROUNDS):
                runs["ours"].append(ours(subscription, message, received))
                connections.close_all()  # not shared with the forked loop processes
                messages = signed(runs["ours"][-1].pop("rows"), subscription.secret)
                runs["reference"].append(reference(url, messages, received))
                o, r = runs["ours"][-1], runs["reference"][-1]
                print(
                    f"round {round_ + 1}: ours {o['rate']:7.1f} deliveries/s (drain, {o['jobs']} RQ jobs), "
                    f"{o['wall']:7.1f} (wall); reference {r['rate']:7.1f} posts/s; ratio {o['rate'] / r['rate']:.2f}",
                    flush=True,
                )
            median = {name: {key: statistics.median(run[key] for run in values) for key in values[0]}
                      for name, values in runs.items()}  # fmt: skip
            o, r = median["ours"], median["reference"]
            print(f"\nMedians of {ROUNDS} rounds, {N} messages each (CPU ms per message):")
            print(
                f"  ours, 2 workers of our class   {o['rate']:8.1f} deliveries/s (drain), {o['wall']:.1f} (wall); "
                f"CPU workers {o['cpu'] / N * 1000:.2f}, receiver {o['receiver'] / N * 1000:.2f}"
            )
            print(
                f"  reference, 2 requests loops    {r['rate']:8.1f} posts/s; "
                f"CPU loops {r['cpu'] / N * 1000:.2f}, receiver {r['receiver'] / N * 1000:.2f}"
            )
            met = verdict("ours / reference", o["rate"] / r["rate"], TARGET)
            breakdown(subscription, message, r["rate"])
        return 0 if met else 1
    finally:
        from pipeline_project.lib.redis import get_redis

        get_redis().flushdb()
        shutil.rmtree(media, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
