"""Ready-made organizations, users and API clients.

``org`` has an ``owner`` (admin), a ``member`` and a ``viewer``; ``outsider`` is an
admin of ``other_org``. ``as_owner``, ``as_member``, ``as_viewer``, ``as_outsider``
are API clients logged in (JWT) as them; ``anon`` has no credentials. So a
permission test is one line: ``assert as_viewer.post(url, data).status_code == 403``.
"""

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken
from rq import Queue

from accounts import auth_cache
from accounts.roles import Role
from pipeline_project.lib.redis import get_redis
from pipeline_project.lib.throttling import reset_local_counts
from pipelines.stages import REGISTRY
from tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory, UserFactory

# Metrics (pipeline_project/metrics.py): this session's processes, the rqworkers it starts included (they
# inherit the environment), count in a directory of their own, deleted at the end. Set before any metric
# of ours is written (a process opens its files at its first one; importing our code writes none; django-rq's
# admin writes a summary of its own at start-up, which /metrics leaves out).
METRICS_DIR = Path(tempfile.mkdtemp(prefix="pipeline-test-metrics-"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
settings.PROMETHEUS_MULTIPROC_DIR = METRICS_DIR


def pytest_unconfigure(config):
    shutil.rmtree(METRICS_DIR, ignore_errors=True)


def pytest_configure(config):
    if not settings.DATABASES["default"]["ENGINE"].endswith(".backends.postgresql"):  # django-prometheus's wrapper
        raise pytest.UsageError("The suite runs on PostgreSQL: use `make test` (it sets DATABASE_URL).")
    if urlparse(settings.REDIS_URL).path in ("", "/", "/0"):
        raise pytest.UsageError("Tests flush their Redis database: point REDIS_URL at a database other than 0.")


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (queues, throttle counters, auth cache)
    and no in-process copies of it."""
    get_redis().flushdb()
    auth_cache.clear_local()
    reset_local_counts()


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # API calls' audit records written in the request, so tests can read them at once; the queued
    # path (Redis, then the writer) has its own tests in tests/audit/test_recording.py.
    settings.AUDIT_DEFERRED_WRITES = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
    # The hashed-manifest storage needs `collectstatic`; tests serve the admin's files unhashed.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


class Client(APIClient):
    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user


def jwt_client(user, **headers) -> Client:
    client = Client(user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}", **headers)
    return client


def key_client(raw_key: str) -> Client:
    client = Client()
    client.credentials(HTTP_X_API_KEY=raw_key)
    return client


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Globex", slug="globex")


def _member(organization, role, username):
    return MembershipFactory(organization=organization, role=role, user=UserFactory(username=username)).user


@pytest.fixture
def owner(org):
    return _member(org, Role.ADMIN, "owner")


@pytest.fixture
def member(org):
    return _member(org, Role.MEMBER, "member")


@pytest.fixture
def viewer(org):
    return _member(org, Role.VIEWER, "viewer")


@pytest.fixture
def outsider(other_org):
    return _member(other_org, Role.ADMIN, "outsider")


@pytest.fixture
def anon():
    return Client()


@pytest.fixture
def as_owner(owner):
    return jwt_client(owner)


@pytest.fixture
def as_member(member):
    return jwt_client(member)


@pytest.fixture
def as_viewer(viewer):
    return jwt_client(viewer)


@pytest.fixture
def as_outsider(outsider):
    return jwt_client(outsider)


@pytest.fixture
def owner_key(org, owner):
    return ApiKeyFactory(organization=org, created_by=owner)


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def crash_stages():
    """Registers the test-only stages of ``tests/pipelines/crash_stages.py`` in this process
    (before any parser process is forked: a child sees the stages registered when it started)
    and restores ``REGISTRY`` afterwards. Worker processes load them with
    ``PIPELINE_STAGE_MODULES=tests.pipelines.crash_stages``."""
    saved = dict(REGISTRY)
    module = "tests.pipelines.crash_stages"
    if module in sys.modules:
        importlib.reload(sys.modules[module])
    else:
        importlib.import_module(module)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved)


@pytest.fixture
def run_worker():
    """Drains the job queues with our worker class, in process (burst mode): jobs run here,
    their documents' stages in its parser child process."""
    from jobs.worker import Worker

    def drain():
        queues = [Queue(name, connection=get_redis()) for name in ("high", "default", "low")]
        Worker(queues, connection=get_redis()).work(burst=True, with_scheduler=False)

    return drain


@pytest.fixture
def without_request_audit(settings):
    """For tests pinning an endpoint's own SQL: the audit middleware's record of each request (one
    statement, pinned in tests/audit/test_recording.py) is left out."""
    settings.AUDIT_API_REQUESTS = False
