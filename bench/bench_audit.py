"""What recording every API call costs: latency with the audit middleware on / off.

Two gunicorns with the same settings (2 sync workers, PostgreSQL, Redis), one with
``AUDIT_API_REQUESTS=1`` (the default: every /api/ request recorded, redacted, hash-chained),
one with ``0``. For ``POST /api/v1/jobs`` (a url job with an API key: what clients do most) and
``GET /api/v1/jobs`` (a page of 20 of the organization's jobs), wrk measures the p50 and p95
latency of each server back to back (in turns: on first, then off first), over rounds, over one connection (latency, not
queueing: at 2 connections both cores of this machine are busy with the 2 web workers, PostgreSQL
and wrk, and any work done beside the requests, here the writer's, shows as latency;
``BENCH_CONNECTIONS=2`` measures that). The records are written as in production: queued in Redis by the
request, written in batches by an RQ worker of ours on the ``high`` queue, running throughout (so
its CPU counts against the "on" rounds). Prints the medians, and the median over rounds of each
round's on/off ratio (a shared machine drifts between rounds, much less within a pair), and checks that
every request of the "on" server was recorded. Target: every ratio <= 1.10.

    make bench-audit      # BENCH_ROUNDS=8, BENCH_SECONDS=4, BENCH_CONNECTIONS=1
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import OUR_WORKER, bench_api_key, ensure_wrk, gunicorn, setup_django, start_worker

TARGET = 1.10
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "1"))
PERCENTILES = """
done = function(summary, latency, requests)
  io.write(string.format("p50_us %d\\np95_us %d\\n", latency:percentile(50), latency:percentile(95)))
end
"""
POST = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source_type": "url", "source_uri": "https://93.184.216.34/report.pdf", "metadata": {"batch": 1}}'
"""


def latencies(url: str, key: str, script: Path) -> tuple[float, float, int]:
    """p50 and p95 in milliseconds of ``url`` (wrk), and how many requests were made."""
    command = [ensure_wrk(), f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s", str(script)]
    command += ["-H", f"X-API-Key: {key}", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    p50, p95 = (int(re.search(rf"{name}_us (\d+)", out).group(1)) / 1000 for name in ("p50", "p95"))
    return p50, p95, int(re.search(r"(\d+) requests in", out).group(1))


def _recorded_when_drained(model, before: int) -> int:
    """Records written once the queue is empty (the worker catches up after the last round)."""
    from audit.services import QUEUED
    from pipeline_project.lib.redis import get_redis

    for _ in range(600):
        if get_redis().llen(QUEUED) == 0:
            break
        time.sleep(0.1)
    return model.objects.count() - before


def server(audit: bool):
    common.ENV["AUDIT_API_REQUESTS"] = "1" if audit else "0"
    return gunicorn()


def main() -> int:
    setup_django()
    from audit.models import AuditLog
    from pipeline_project.lib.redis import get_redis

    key, _, _ = bench_api_key()
    scripts = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    (scripts / "get.lua").write_text(PERCENTILES)
    (scripts / "post.lua").write_text(POST + PERCENTILES)
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    writer = start_worker(["high"], OUR_WORKER, burst=False)
    try:
        with server(audit=True) as on, server(audit=False) as off:
            for base in (on, off):  # warm both, and give the list some jobs
                latencies(f"{base}/api/v1/jobs", key, scripts / "post.lua")
            before = _recorded_when_drained(AuditLog, 0)
            for round_ in range(ROUNDS):
                for endpoint, script in (("POST /api/v1/jobs", "post.lua"), ("GET /api/v1/jobs", "get.lua")):
                    servers = (("on", on), ("off", off)) if round_ % 2 == 0 else (("off", off), ("on", on))
                    for label, base in servers:  # back to back, in turns: the pair shares the machine's state
                        measured = latencies(f"{base}/api/v1/jobs", key, scripts / script)
                        results.setdefault((endpoint, label), []).append(measured)
            recorded = _recorded_when_drained(AuditLog, before)
    finally:
        writer.terminate()
        writer.wait(timeout=60)
        get_redis().flushdb()
    print(f"\nwrk over {CONNECTIONS} connection(s), {ROUNDS} rounds of {SECONDS} s per case")
    print(f"{'endpoint':<22}{'audit':>6}{'p50 ms':>9}{'p95 ms':>9}")
    met = True
    for endpoint in ("POST /api/v1/jobs", "GET /api/v1/jobs"):
        medians = {}
        for label in ("on", "off"):
            runs = results[(endpoint, label)]
            medians[label] = tuple(statistics.median(run[index] for run in runs) for index in (0, 1))
            print(f"{endpoint:<22}{label:>6}{medians[label][0]:>9.2f}{medians[label][1]:>9.2f}")
        pairs = list(zip(results[(endpoint, "on")], results[(endpoint, "off")], strict=True))
        for index, name in ((0, "p50"), (1, "p95")):
            ratios = sorted(on_run[index] / off_run[index] for on_run, off_run in pairs)
            ratio = statistics.median(ratios)
            met &= ratio <= TARGET
            print(f"{endpoint:<22}{name} on/off ratio {ratio:.3f} (median of rounds {ratios[0]:.2f}-{ratios[-1]:.2f};"
                  f" target <= {TARGET})")  # fmt: skip
    made = sum(run[2] for (_, label), runs in results.items() if label == "on" for run in runs)
    print(f"requests to the audited server in the measured rounds: {made}; audit records written: {recorded}")
    met &= recorded >= made  # wrk does not count the requests still in flight when it stops
    print(f"target: every ratio <= {TARGET} -> {'MET' if met else 'NOT MET'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
