"""Settings come from the environment; a malformed value stops start-up naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from pipeline_project.lib import env

BASE_ENV = {"DEBUG": "0", "SECRET_KEY": "s" * 40, "DATABASE_URL": "sqlite:////tmp/x.sqlite3"}


def start(**overrides) -> subprocess.CompletedProcess:
    """Imports the settings in a fresh interpreter, as start-up does."""
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    environment.update(BASE_ENV, DJANGO_SETTINGS_MODULE="pipeline_project.settings", **overrides)
    code = "import django; django.setup(); from django.conf import settings as s; print(s.DATABASES['default'])"
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://x@y/z"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("JWT_ACCESS_TTL", "15 minutes"),
        ("JWT_REFRESH_TTL", "0"),
        ("THROTTLE_RATE_USER", "lots"),
        ("UPLOAD_MAX_FILE_SIZE", "1 TB"),
        ("UPLOAD_MAX_FILES", "-1"),
        ("DATABASE_CONN_MAX_AGE", "forever"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_it_refuses_to_start_with_a_malformed_variable(name, value):
    if name == "DATABASE_CONN_MAX_AGE":
        result = start(DATABASE_URL="postgres://u@localhost/db", **{name: value})
    else:
        result = start(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr.splitlines()[-1]


def test_it_requires_a_secret_key_when_debug_is_off():
    for module in ("pipeline_project.wsgi", "pipeline_project.asgi"):
        environment = {
            **os.environ,
            **BASE_ENV,
            "SECRET_KEY": "",
            "DJANGO_SETTINGS_MODULE": "pipeline_project.settings",
        }
        result = subprocess.run([sys.executable, "-c", f"import {module}"], env=environment, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        assert result.returncode != 0 and "SECRET_KEY is required" in result.stderr, module


def test_commands_that_need_no_secret_run_with_no_environment_at_all(tmp_path):
    """`manage.py makemigrations --check` works in a bare shell, and finds every model migrated."""
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        env={"PATH": os.environ["PATH"], "VAR_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_it_has_a_dev_secret_key_only_with_debug():
    assert start(SECRET_KEY="", DEBUG="1").returncode == 0


def test_it_defaults_to_sqlite_under_var():
    environment = {k: v for k, v in BASE_ENV.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "d = s.DATABASES['default']; print(d['NAME'], d['OPTIONS']['transaction_mode'])",
        ],
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "pipeline_project.settings", **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("var/db.sqlite3 IMMEDIATE")


def test_the_suite_runs_on_postgres_with_its_own_redis_database(db):
    assert django_settings.DATABASES["default"]["ENGINE"].endswith(".backends.postgresql")  # django-prometheus wraps it
    assert django_settings.DATABASES["default"]["NAME"].startswith("test_")
    assert set(django_settings.RQ_QUEUES) == {"high", "default", "low", "webhooks"}
    assert all(q["URL"] == django_settings.REDIS_URL for q in django_settings.RQ_QUEUES.values())


@pytest.mark.parametrize(
    "reader, raw, expected",
    [
        (lambda: env.env_bool("X"), "Yes", True),
        (lambda: env.env_bool("X"), "off", False),
        (lambda: env.env_seconds("X", 1), "15m", 900),
        (lambda: env.env_seconds("X", 1), "7d", 604800),
        (lambda: env.env_bytes("X", 1), "512K", 524288),
        (lambda: env.env_bytes("X", 1), "1G", 1024**3),
        (lambda: env.env_list("X", []), " a, b ,,c", ["a", "b", "c"]),
        (lambda: env.env_rate("X", "1/s"), "none", None),
        (lambda: env.env_rate("X", "1/s"), "100/min", "100/min"),
    ],
)
def test_env_readers(monkeypatch, reader, raw, expected):
    monkeypatch.setenv("X", raw)
    assert reader() == expected


def test_env_readers_name_the_variable(monkeypatch):
    monkeypatch.setenv("UPLOAD_MAX_FILES", "many")
    with pytest.raises(ImproperlyConfigured, match="UPLOAD_MAX_FILES='many' is invalid: expected an integer"):
        env.env_int("UPLOAD_MAX_FILES", 1)


# The set README.md documents under "Production settings".
PRODUCTION_ENV = {
    "DEBUG": "0",
    "BEHIND_TLS_PROXY": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "ALLOWED_HOSTS": "api.example.com",
}


def test_the_documented_production_settings_pass_check_deploy():
    from django.core.management.utils import get_random_secret_key

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DJANGO_"))}
    environment.update(PRODUCTION_ENV, SECRET_KEY=get_random_secret_key(), DATABASE_URL=django_settings.DATABASE_URL,
                       REDIS_URL=django_settings.REDIS_URL)  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=environment, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_https_redirects_spare_health_checks(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/api/v1/auth/me").status_code == 301
    assert client.get("/health").status_code == 200
    assert client.get("/health/ready").status_code in (200, 503)  # answered over plain HTTP, not redirected
