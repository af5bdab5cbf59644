"""What creating jobs costs, pinned: SQL statements and Redis round trips of POST /jobs and
POST /upload (issue 8). Counted on a warm process, as a web worker serves most requests:
authentication answered from its own memory, rate-limit hits counted in process, the
organization's default pipeline version in hand. Transactions commit for real here
(``transaction=True``), so BEGIN/COMMIT are counted and the RQ enqueue after commit is seen.

A POST /jobs is two statements when no webhook listens (issue 9): who listens to the
organization's events, then the job, its input file and first timeline entry inserted together
(the cached pipeline version checked inside it); and one Redis round trip (RQ's own enqueue, in
one transactional pipeline). An upload is BEGIN, one INSERT each for jobs, files and timeline
entries (whatever the number of files), who listens, COMMIT, and one Redis round trip.
No timing is asserted anywhere.
"""

from contextlib import contextmanager, nullcontext
from functools import partial
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from redis.connection import AbstractConnection
from rq.job import Job as RQJob

from accounts.principal import Principal
from accounts.roles import ROLE_PERMISSIONS, Role
from jobs import services
from jobs.models import Job, JobEvent, JobFile
from pipeline_project.lib.redis import get_redis
from pipelines.models import Pipeline
from pipelines.services import _default_versions, pipeline_update
from tests.conftest import jwt_client, key_client

pytestmark = pytest.mark.django_db(transaction=True)

JOBS, UPLOAD = "/api/v1/jobs", "/api/v1/upload"
ENQUEUE = ["MULTI", "SADD", "HSET", "HSET", "RPUSH", "EXEC"]  # register the queue, status, job hash, push


def text_job(client):
    return client.post(JOBS, {"source_type": "text", "text": "Hello, wörld."}, format="json")


def url_job(client):
    return client.post(JOBS, {"source_type": "url", "source_uri": "https://93.184.216.34/a.pdf"}, format="json")


def upload(*names):
    def post(client):
        files = [SimpleUploadedFile(name, f"{name}: some text\n".encode()) for name in names]
        return client.post(UPLOAD, {"files": files}, format="multipart")

    post.__name__ = f"upload_{len(names)}"
    return post


def _commands(data: bytes) -> list[str]:
    """The command names in a buffer of RESP-encoded commands (what a client sends)."""
    names, position = [], 0
    while position < len(data):
        end = data.index(b"\r\n", position)
        count, position = int(data[position + 1 : end]), end + 2
        for index in range(count):
            end = data.index(b"\r\n", position)
            length, position = int(data[position + 1 : end]), end + 2
            if index == 0:
                names.append(data[position : position + length].decode())
            position += length + 2
    return names


@contextmanager
def redis_round_trips():
    """The Redis round trips made inside the block, each as the list of its command names (a
    pipeline is one round trip). A lone PING is redis-py's connection health check, left out."""
    trips: list[list[str]] = []
    send = AbstractConnection.send_packed_command

    def recording(self, command, check_health=True):
        chunks = [command] if isinstance(command, bytes | str) else command
        names = _commands(b"".join(chunk.encode() if isinstance(chunk, str) else bytes(chunk) for chunk in chunks))
        if names != ["PING"]:
            trips.append(names)
        return send(self, command, check_health)

    with mock.patch.object(AbstractConnection, "send_packed_command", recording):
        yield trips


@contextmanager
def counted():
    """The SQL statements and the Redis round trips (``redis_round_trips``) of the block."""
    statements, trips = [], []
    with CaptureQueriesContext(connection) as queries, redis_round_trips() as recorded:
        yield statements, trips
    statements += [query["sql"] for query in queries.captured_queries]  # read now: a request empties the log
    trips += recorded


def first_words(statements: list[str]) -> list[str]:
    return [statement.split()[0] for statement in statements]


@pytest.fixture(autouse=True)
def _warm_process(settings, without_request_audit):
    """Caches that a busy web process keeps warm, kept warm for the whole test (a slow machine
    must not turn a cache hit into a miss): auth entries, rate-limit counts (added to Redis once an
    hour, and a daily window so that no window ends between two requests)."""
    settings.AUTH_LOCAL_CACHE_TTL = 3600
    settings.THROTTLE_SYNC_INTERVAL = 3600
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "principal": "100000/d"}}


@pytest.fixture(params=["api_key", "jwt"])
def client(request, owner, owner_key):
    return key_client(owner_key.raw_key) if request.param == "api_key" else jwt_client(owner)


@pytest.mark.parametrize(
    "post, count, enqueue",
    [
        (text_job, 2, ENQUEUE),  # who listens to the organization's events (webhooks), the job
        (url_job, 2, ENQUEUE),
        # BEGIN, INSERT jobs, INSERT job_files, INSERT job_events, who listens, COMMIT
        (upload("a.txt"), 6, ENQUEUE),
        (upload("a.txt", "b.md"), 6, ["MULTI", *ENQUEUE[1:-1] * 2, "EXEC"]),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_it_creates_jobs_in_a_fixed_number_of_statements_and_round_trips(client, post, count, enqueue):
    assert post(client).status_code == 201  # warms the caches: credentials, the default pipeline's version
    with counted() as (statements, trips):
        response = post(client)
    assert response.status_code == 201, response.content
    assert len(statements) == count, [statement[:80] for statement in statements]
    assert trips == [enqueue]
    created = [job["id"].encode() for job in response.json().get("jobs", [response.json()])]
    assert get_redis().lrange("rq:queue:default", -len(created), -1) == created


def test_a_job_is_inserted_with_its_file_and_its_event_in_one_statement(owner_key, settings):
    client = key_client(owner_key.raw_key)
    text_job(client)
    with counted() as (statements, _):
        body = text_job(client).json()
    listeners, statement = statements
    assert '"webhook_subscriptions"' in listeners
    assert statement.startswith("WITH ") and '"job_files"' in statement and '"job_events"' in statement
    assert (body["file_name"], body["file_size"], body["mime_type"]) == ("input.txt", len("Hello, wörld.".encode()),
                                                                         "text/plain")  # fmt: skip
    job_file = JobFile.objects.get(job_id=body["id"])
    assert (settings.MEDIA_ROOT / job_file.storage_name).read_text() == "Hello, wörld."
    event = JobEvent.objects.get(job_id=body["id"])
    assert (event.to_status, event.actor, event.message) == ("queued", f"key:{owner_key.id}", "created")
    job = Job.objects.get(pk=body["id"])
    assert job.created_at.isoformat().replace("+00:00", "Z") == body["created_at"]


def test_the_rq_job_is_stock_rq(owner_key):
    body = url_job(key_client(owner_key.raw_key)).json()
    rq_job = RQJob.fetch(body["id"], connection=get_redis())
    assert (rq_job.func_name, rq_job.args, rq_job.origin) == ("jobs.tasks.run_job", (body["id"],), "default")
    assert rq_job._stopped_callback_name == "jobs.tasks.job_stopped"


def test_a_process_without_the_version_in_hand_reads_it_in_the_jobs_transaction(owner_key):
    client = key_client(owner_key.raw_key)
    url_job(client)  # creates the default pipeline
    _default_versions.clear()  # as in a process that has not created a job for this organization yet
    with counted() as (statements, trips):
        assert url_job(client).status_code == 201
    assert first_words(statements) == ["SELECT", "BEGIN", "SELECT", "WITH", "COMMIT"]
    assert trips == [ENQUEUE]


def test_a_cached_version_is_never_used_once_the_pipeline_changed(owner_key, org):
    """Another process updating the default pipeline leaves this process's cache as it was: the
    statement inserting the job checks the version, finds it stale, and the job runs the new one."""
    client = key_client(owner_key.raw_key)
    first = url_job(client).json()
    pipeline = Pipeline.objects.get(pk=first["pipeline"]["id"])
    pipeline_update(pipeline=pipeline, changes={"config": {"stages": [{"name": "detect"}]}})
    with mock.patch("pipelines.services._default_versions", dict(_default_versions)):  # not refreshed by the update
        with counted() as (statements, _):
            second = url_job(client).json()
        uploaded = upload("a.txt")(client).json()["jobs"][0]
        pipeline_update(pipeline=pipeline, changes={"config": {"stages": [{"name": "quality"}]}})
        uploaded_again = upload("a.txt")(client).json()["jobs"][0]
    assert first_words(statements) == ["SELECT", "WITH", "BEGIN", "SELECT", "WITH", "COMMIT"]
    assert (first["pipeline"]["version"], second["pipeline"]["version"]) == (1, 2)
    assert (uploaded["pipeline"]["version"], uploaded_again["pipeline"]["version"]) == (2, 3)
    for body, version in ((second, 2), (uploaded, 2), (uploaded_again, 3)):
        job = Job.objects.select_related("pipeline_version").get(pk=body["id"])
        assert (job.pipeline_version.version, job.config) == (version, job.pipeline_version.config)
        assert JobEvent.objects.filter(job=job).count() == 1
    assert Job.objects.count() == 4


def test_a_named_pipeline_is_read_in_the_jobs_transaction(owner_key, org):
    client = key_client(owner_key.raw_key)
    pipeline = client.post("/api/v1/pipelines", {"name": "fast", "config": {"stages": [{"name": "detect"}]}},
                           format="json").json()  # fmt: skip
    body = {"source_type": "url", "source_uri": "https://93.184.216.34/a.pdf", "pipeline_id": pipeline["id"]}
    with counted() as (statements, trips):
        response = client.post(JOBS, body, format="json")
    assert response.json()["pipeline"] == {"id": pipeline["id"], "name": "fast", "version": 1}
    assert first_words(statements) == ["SELECT", "BEGIN", "SELECT", "WITH", "COMMIT"]
    assert trips == [ENQUEUE]


def test_an_idempotency_key_costs_one_lookup_and_a_replay_reads_one_row(owner_key):
    client = key_client(owner_key.raw_key)
    url_job(client)
    body = {"source_type": "url", "source_uri": "https://93.184.216.34/a.pdf"}
    with counted() as (created, trips):
        first = client.post(JOBS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    with counted() as (replayed, replay_trips):
        again = client.post(JOBS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    assert first_words(created) == ["SELECT", "SELECT", "WITH"]  # the key, who listens, the job
    assert (len(replayed), trips, replay_trips) == (1, [ENQUEUE], [])


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_concurrent_request_with_the_same_key_gets_the_job_it_created(owner, org, owner_key, settings, monkeypatch,
                                                                         in_transaction):  # fmt: skip
    """The other request's job commits between our lookup and our INSERT: the INSERT fails on the
    unique key and the job created first is answered. Inside a caller's transaction, that
    transaction stays usable (the statement ran in a savepoint)."""
    principal = Principal(user=owner, organization=org, role=Role.ADMIN, permissions=ROLE_PERMISSIONS[Role.ADMIN],
                          api_key=owner_key)  # fmt: skip
    create = partial(services.job_create, principal=principal, source_type="text", text="Hello", priority=2,
                     idempotency_key="k-2", fingerprint="same request")  # fmt: skip
    winner, _ = create()
    lookups, original = [], services._idempotent_job

    def lookup(*args):  # the first lookup misses: the winner has not committed yet
        lookups.append(args)
        return original(*args) if len(lookups) > 1 else None

    monkeypatch.setattr(services, "_idempotent_job", lookup)
    with transaction.atomic() if in_transaction else nullcontext():
        job, created = create()
        assert Job.objects.count() == 1  # a query still runs in the caller's transaction
    assert (job.id, created, len(lookups)) == (winner.id, False, 2)
    assert (Job.objects.count(), JobFile.objects.count(), JobEvent.objects.count()) == (1, 1, 1)
    assert len([path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()]) == 1  # the loser's was deleted
