"""Shared helpers for benchmarks: a throwaway PostgreSQL database, gunicorn, wrk.

Benchmarks are run by hand (`make bench-*`), print absolute figures and, above all,
ratios measured side by side in one run: this machine is shared and noisy.

Environment: BENCH_DATABASE_URL, BENCH_REDIS_URL (defaults: database pipeline_bench, Redis
database 14), BENCH_THROTTLE (the per-caller rate; counted but never reached by default),
BENCH_GUNICORN_ARGS (extra gunicorn options, e.g. "--worker-class gthread --threads 4").
"""

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/pipeline_bench")
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "pipeline_project.settings",
    "DATABASE_URL": BENCH_DATABASE_URL,
    "REDIS_URL": BENCH_REDIS_URL,
    "DEBUG": "0",
    "SECRET_KEY": "bench-secret-key-bench-secret-key-bench-secret",
    "THROTTLE_RATE_USER": os.environ.get("BENCH_THROTTLE", "100000000/min"),  # enforced (counted), never reached
    "THROTTLE_RATE_ANON": "none",
    "LOG_LEVEL": "WARNING",
}


def setup_django():
    """Configures this process for the bench database (created afresh and migrated)."""
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    name = settings.DATABASES["default"]["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from pipeline_project.lib.redis import get_redis

    get_redis().flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(workers: int = 2, extra: tuple[str, ...] = ()):
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "pipeline_project.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--limit-request-line",
            "8190",  # as the Dockerfile runs it
            *extra,
            *os.environ.get("BENCH_GUNICORN_ARGS", "").split(),
        ],
        cwd=ROOT,
        env=ENV,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        print("installing wrk (Debian package) ...", file=sys.stderr)
        subprocess.run(["bash", "-c", "source scripts/lib.sh && apt_install wrk"], cwd=ROOT, check=True)
    return shutil.which("wrk")


def wrk_rps(
    url: str, headers: dict[str, str] | None = None, *, seconds: int = 5, connections: int = 8, script=None
) -> float:
    """Requests/s that answered 2xx (wrk counts non-2xx separately; any makes the run invalid).
    ``script``: a wrk Lua script (e.g. setting the method and body)."""
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command += ["-s", str(script)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def interleaved(cases: dict[str, callable], rounds: int = 5) -> dict[str, float]:
    """Runs each case once per round, in turn, and returns each case's median."""
    results = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            results[name].append(case())
    return {name: statistics.median(values) for name, values in results.items()}


def bench_api_key(name: str = "bench"):
    """A new organization with an admin and an API key: ``(key, user, organization)``."""
    from accounts.models import User
    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS, Role
    from accounts.services import api_key_create, organization_create

    user = User.objects.create_user(name, password="bench-password-1")
    organization = organization_create(name=name, owner=user)
    admin = Principal(user=user, organization=organization, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN])
    return api_key_create(principal=admin, name=name)[1], user, organization
