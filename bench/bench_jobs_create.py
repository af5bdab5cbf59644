"""Job creation throughput on gunicorn (2 sync workers, PostgreSQL, Redis/RQ).

Requests/s of POST /api/v1/jobs (a url job: validated, inserted with its timeline event,
enqueued on RQ after commit) divided by GET /health, interleaved in one run.
Target: ratio >= 0.4.

    make bench-jobs-create
"""

import json
import sys
import tempfile
from pathlib import Path

from common import bench_api_key, gunicorn, interleaved, setup_django, wrk_rps

TARGET = 0.4
BODY = {"source_type": "url", "source_uri": "https://93.184.216.34/report.pdf", "metadata": {"batch": 1}}


def main() -> int:
    setup_django()
    key, _, _ = bench_api_key()
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.body = '{json.dumps(BODY)}'\n")

    with gunicorn(workers=2) as base:
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        wrk_rps(f"{base}/health", seconds=2)
        wrk_rps(f"{base}/api/v1/jobs", headers, seconds=2, script=script)
        rps = interleaved(
            {
                "health": lambda: wrk_rps(f"{base}/health"),
                "create": lambda: wrk_rps(f"{base}/api/v1/jobs", headers, script=script),
            }
        )
    from jobs.models import Job

    ratio = rps["create"] / rps["health"]
    print(f"{'endpoint':<28}{'req/s':>10}{'ratio':>9}")
    print(f"{'GET /health':<28}{rps['health']:>10.0f}{1:>9.2f}")
    print(f"{'POST /jobs':<28}{rps['create']:>10.0f}{ratio:>9.2f}")
    print(f"jobs created: {Job.objects.count()}")
    print(f"target: ratio >= {TARGET} -> {'MET' if ratio >= TARGET else 'NOT MET'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
