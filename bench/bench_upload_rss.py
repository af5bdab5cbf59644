"""Memory of the web process while it receives a 1 GiB upload.

Uploads a 1 GiB text file with curl (streamed from disk) to POST /api/v1/upload on gunicorn
and reads the worker's peak RSS (VmHWM) before and after. Target: growth < 64 MiB, i.e. the
file streams through temporary storage and never sits in memory.

    make bench-upload-rss        # BENCH_UPLOAD_MIB=1024 by default; needs ~3 GiB of free disk
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, bench_api_key, gunicorn, setup_django

TARGET_MIB = 64
SIZE_MIB = int(os.environ.get("BENCH_UPLOAD_MIB", "1024"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def worker_pid(master_port: str) -> int:
    pids = subprocess.run(["pgrep", "-f", "gunicorn pipeline_project"], capture_output=True, text=True).stdout.split()
    return max(int(pid) for pid in pids)  # the worker is the master's newest child


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    ENV.update({"UPLOAD_MAX_FILE_SIZE": f"{SIZE_MIB + 1}M", "MEDIA_ROOT": str(work / "media"),
                "FILE_UPLOAD_TEMP_DIR": str(work)})  # fmt: skip
    setup_django()
    key, _, _ = bench_api_key()

    big = work / "big.txt"
    line = b"The quick brown fox jumps over the lazy dog. 0123456789\n" * 1170  # ~64 KiB of text
    with big.open("wb") as out:
        while out.tell() < SIZE_MIB * 1024 * 1024:
            out.write(line)
    print(f"file: {big.stat().st_size / 2**20:.0f} MiB", flush=True)

    with gunicorn(workers=1, extra=("--timeout", "600")) as base:
        small = work / "small.txt"
        small.write_bytes(line)
        curl = ["curl", "-sS", "-H", f"X-API-Key: {key}", f"{base}/api/v1/upload"]
        subprocess.run([*curl, "-F", f"files=@{small}"], check=True, capture_output=True)  # warm up
        pid = worker_pid(base)
        before = peak_rss_mib(pid)
        started = time.monotonic()
        out = subprocess.run([*curl, "-F", f"files=@{big}"], check=True, capture_output=True, text=True).stdout
        elapsed = time.monotonic() - started
        after = peak_rss_mib(pid)
    job = json.loads(out)["jobs"][0]
    stored = sum(p.stat().st_size for p in (work / "media").rglob("*") if p.is_file())
    subprocess.run(["rm", "-rf", str(work)], check=True)
    growth = after - before
    print(f"upload: {SIZE_MIB} MiB in {elapsed:.1f} s ({SIZE_MIB / elapsed:.0f} MiB/s); job {job['id']} "
          f"{job['status']}, {job['file_size'] / 2**20:.0f} MiB stored ({stored / 2**20:.0f} MiB on disk)")  # fmt: skip
    print(f"worker peak RSS: {before:.0f} MiB before, {after:.0f} MiB after: +{growth:.1f} MiB")
    print(f"target: growth < {TARGET_MIB} MiB -> {'MET' if growth < TARGET_MIB else 'NOT MET'}")
    return 0 if growth < TARGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
