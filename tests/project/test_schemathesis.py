"""Schemathesis over the whole OpenAPI schema, in process, on every run of the suite.

How it works, for a newcomer:

- The schema is the one the app serves (``GET /api/schema/``), loaded through Schemathesis's WSGI
  integration from ``pipeline_project.wsgi.application``; requests go to that same app in process
  (no server; the test database, committed per request as on a live server). Every operation of the
  schema becomes a test item, so an operation added later is fuzzed with no edit here.
- ``test_api`` runs each operation three times (``auth_mode``): with a JWT (``Authorization: Bearer``),
  with an API key (``X-API-Key``) and without credentials. Schemathesis generates no credentials of
  its own (``with-security-parameters = false``): each mode sends exactly its own.
- Its cases come from three phases - the schema's examples, coverage cases (boundary values, missing
  required values, undeclared HTTP methods...) and Hypothesis fuzzing - in both generation modes
  (positive data the schema allows, negative data it forbids), with every check enabled (as
  ``--checks all``: server errors, documented statuses, content types, response schemas and headers,
  positive data accepted, negative data rejected, auth enforced, 405 for undeclared methods...).
- ``test_stateful`` chains operations along the links Schemathesis infers (create a pipeline, then
  get, update, delete it...), with a JWT and with an API key: that is where the checks that need a
  history (``use_after_free``, ``ensure_resource_availability``) run.
- Deterministic and bounded by default: derandomized Hypothesis, no deadline, no example database,
  ``SCHEMATHESIS_MAX_EXAMPLES`` (default 25) fuzzed cases per operation and mode, as many stateful
  scenarios. Every request sent is counted and ``test_the_run_is_not_silently_smaller`` fails if a
  full run sent fewer than ``MIN_CASES``. ``make fuzz`` runs long and randomized
  (``SCHEMATHESIS_MAX_EXAMPLES=1000``, ``SCHEMATHESIS_DERANDOMIZE=0``) and prints its seed:
  ``SCHEMATHESIS_SEED=N`` replays it. A failure prints its case as a curl command.
- Operations on one object (``/jobs/{id}``, ``DELETE /auth/api-keys/{id}``, ``DELETE /pipelines/{id}``,
  ``POST .../cancel``...) get throwaway objects: for about half of the cases with valid path
  parameters, a ``before_call`` hook creates a fresh object in the caller's organization (an API key;
  a pipeline; a job that is a draft, queued, failed, or completed with a result; a draft with a
  file) and puts its id in the path, so both the "exists" and the "404" branches run. Likewise
  ``/auth/refresh`` and ``/auth/logout`` get a real refresh token, ``/auth/login`` real credentials.
  The run's own credentials are never the target (the API lets a key revoke itself): the hook swaps
  them for a throwaway, and the ``world`` fixture checks at the end that they still work.
- Server-issued opaque values cannot be generated: cases use the first cursor page (``cursor=``) and
  the first step of a two-step cancel (no ``confirm_token``), and an API key's ``expires_at`` in the
  past moves a day ahead (the schema cannot say "in the future"). Garbage cursors and tokens are 400
  by design, pinned by our own tests.
- Rate limits are lifted for the run (``settings`` fixture), so no case answers 429; host names in
  URLs do not resolve (``OfflineResolver``), so no case waits for DNS.
- NUL characters: PostgreSQL text cannot store ``"\\x00"`` and the API answers 400 for it by design,
  so generation leaves it out (``allow-x00 = false``); our own regression tests cover NUL rejection.
- Uploads: file types are checked from the content (415 otherwise), which JSON Schema cannot
  express, so positive data sent as multipart may be answered 415; negative file parts do not survive
  the multipart encoding, so the negative-data check is off for uploads (see ``_config``).
"""

import os
import socket
import uuid
import zlib
from collections import Counter
from datetime import timedelta

import hypothesis
import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.core.parameters import ParameterLocation

from accounts.roles import Role
from jobs.models import JobResult, JobStatus, SourceType
from pipeline_project.lib import ssrf
from pipeline_project.wsgi import application
from tests.conftest import jwt_client, key_client
from tests.factories import PASSWORD, ApiKeyFactory, MembershipFactory, OrganizationFactory
from tests.jobs.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)  # each request commits, as on a live server

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("SCHEMATHESIS_DERANDOMIZE", "1") != "0"
SEED = os.environ.get("SCHEMATHESIS_SEED")  # replays a randomized run (`make fuzz` prints the one it used)
STATEFUL_STEPS = 10  # operations per stateful scenario, at most
MIN_CASES = 2000  # requests a full run with the defaults must send (it sends about 12,000)
AUTH_MODES = ("jwt", "api_key", "anonymous")
SCHEMA_URL = "/api/schema/"
SOFT_DELETES = ("/api/v1/jobs/{id}", "/api/v1/auth/api-keys/{id}", "/api/v1/pipelines/{id}")
ACCEPTED_VALID_DATA = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # Schemathesis's default
# Schemathesis's default for rejected invalid data, with the request limits' answers (documented on
# every operation): a generated query string past REQUEST_MAX_QUERY_LENGTH is a 414, a body too large a 413.
REJECTED_INVALID_DATA = ["400", "401", "403", "404", "405", "406", "409", "411", "413", "414", "415", "422", "428",
                         "429", "5xx"]  # fmt: skip


def _config(raw_schema: dict) -> schemathesis.Config:
    # Uploads: a file's type is read from its content (415), which a schema cannot say; and negative
    # file parts do not survive the multipart encoding (a "not binary" string is bytes on the wire, an
    # empty part is sent as none), so the check of negative data is off there. Empty files, too many
    # files and non-file parts are pinned by tests/jobs/test_uploads.py.
    uploads = [
        {"include-path": path, "include-method": method.upper(),
         "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED_VALID_DATA, "415"]},
                    "negative_data_rejection": {"enabled": False}}}
        for path, item in raw_schema["paths"].items()
        for method, operation in item.items()
        if "multipart/form-data" in (operation.get("requestBody") or {}).get("content", {})
    ]  # fmt: skip
    # DELETE on these cancels a job, revokes a key, deactivates a pipeline jobs used: the object stays
    # readable with its new status (each DELETE's description says so; the seeds ask for it), which
    # Schemathesis's use-after-free check takes for a bug. Real deletions stay checked (new resources too).
    soft_deletes = [
        {"include-path": path, "include-method": "GET", "checks": {"use_after_free": {"enabled": False}}}
        for path, item in raw_schema["paths"].items()
        if "get" in item and path.startswith(SOFT_DELETES)
    ]
    return schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": "all",  # positive and negative data
                "max-examples": MAX_EXAMPLES,
                "deterministic": DERANDOMIZE,
                "database": "none",
                "allow-x00": False,  # PostgreSQL cannot store "\x00": 400 by design, pinned by our own tests
                "with-security-parameters": False,  # each auth mode sends its own credentials, nothing else
            },
            "checks": {  # all of them
                "enabled": True,
                "negative_data_rejection": {"expected-statuses": REJECTED_INVALID_DATA},
            },
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
            "operations": uploads + soft_deletes,
            **({"seed": int(SEED)} if SEED else {}),
        }
    )


# Loaded twice: the first read finds the operations that take uploads, for the configuration.
schema = schemathesis.openapi.from_wsgi(
    SCHEMA_URL, application, config=_config(schemathesis.openapi.from_wsgi(SCHEMA_URL, application).raw_schema)
)

SENT: Counter = Counter()  # (operation label or "stateful", auth mode) -> requests sent


class World:
    """The organization a run works in: its credentials, and throwaway objects made on demand."""

    JOB_STATES = ("draft", "queued", "failed", "completed")

    def __init__(self, owner, owner_key):
        self.owner = owner
        self.organization = owner.memberships.get().organization
        self.headers = self.credentials(owner, owner_key)
        self.protected = {str(owner_key.id)}  # API keys the run authenticates with: never its targets
        self.api = jwt_client(owner)  # makes throwaway objects through the API itself
        self.created = 0

    @staticmethod
    def credentials(user, api_key) -> dict[str, dict[str, str]]:
        return {
            "jwt": {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"},
            "api_key": {"X-API-Key": api_key.raw_key},
            "anonymous": {},
        }

    def _post(self, url, data, **kwargs):
        self.created += 1
        response = self.api.post(url, data, format=kwargs.pop("format", "json"))
        assert response.status_code == 201, (url, response.status_code, response.content)
        return response.json()

    def api_key(self) -> str:
        return self._post("/api/v1/auth/api-keys", {"name": f"throwaway {self.created}"})["id"]

    def pipeline(self) -> str:
        config = {"stages": [{"name": "detect"}]}
        return self._post("/api/v1/pipelines", {"name": f"throwaway-{self.created}", "config": config})["id"]

    def job(self, state: str) -> str:
        if state == "queued":
            return self._post("/api/v1/jobs", {"source_type": "text", "text": "hello"})["id"]
        if state == "draft":
            return self._post("/api/v1/jobs", {"source_type": "upload"})["id"]
        if state == "failed":
            error = {"code": "invalid_document", "message": "broken", "stage": "extract_text"}
            return str(JobFactory(organization=self.organization, status=JobStatus.FAILED, error=error).id)
        job = JobFactory(organization=self.organization, status=JobStatus.COMPLETED, source_type=SourceType.TEXT)
        JobResult.objects.create(job=job, extracted_text="hello", text_size=5)
        return str(job.id)

    def draft_with_file(self) -> tuple[str, str]:
        job_id = self.job("draft")
        files = {"files": [SimpleUploadedFile("note.txt", b"hello")]}
        return job_id, self._post(f"/api/v1/jobs/{job_id}/files", files, format="multipart")["files"][0]["id"]

    def refresh_token(self) -> str:
        return str(RefreshToken.for_user(self.owner))


_world: World | None = None  # the running test's, for the hook below


@schemathesis.hook  # before_call hooks are global in Schemathesis; this one acts only while a test here runs
def before_call(context, case, kwargs):
    """Half of the cases (picked from their own data, so a failing case replays the same way while
    Hypothesis shrinks it) target real throwaway objects. Schemathesis re-validates what a
    before_call hook changes, so negative cases stay correctly classified."""
    world, params = _world, case.path_parameters or {}
    if world is None:
        return
    for name, value in params.items():  # e.g. the id of GET /auth/me's key, followed by the stateful run
        if str(value) in world.protected:
            params[name] = world.api_key()
    _server_issued_values(case)
    stateful = case.meta is not None and case.meta.phase.name == "stateful"  # ids come from links there
    if stateful:
        _default_pipeline(case)
        return
    pick = zlib.crc32(repr((case.method, case.path, sorted(params.items()), case.body)).encode())
    if pick % 2:
        return
    path, pick = case.path, pick // 2
    if params and not (case.meta and case.meta.is_negative_at(ParameterLocation.PATH)):
        if path.startswith("/api/v1/auth/api-keys/"):
            params["id"] = world.api_key()
        elif path.startswith("/api/v1/pipelines/"):
            params["id"] = world.pipeline()
        elif path.startswith("/api/v1/jobs/") and "file_id" in params:
            params["id"], params["file_id"] = world.draft_with_file()
        elif path.startswith("/api/v1/jobs/"):
            params["id"] = world.job(World.JOB_STATES[pick % len(World.JOB_STATES)])
    if isinstance(case.body, dict):
        if path in ("/api/v1/auth/refresh", "/api/v1/auth/logout") and isinstance(case.body.get("refresh"), str):
            case.body["refresh"] = world.refresh_token()
        elif path == "/api/v1/auth/login" and isinstance(case.body.get("username"), str):
            case.body.update(username=world.owner.username, password=PASSWORD)


def _server_issued_values(case) -> None:
    """Values no generator can make valid, made valid. An ``X-Organization`` is one you belong to or a
    403, so cases act in their own (the header is tested in tests/accounts). Cursors and confirmation
    tokens are opaque and issued by the server: a generated one is 400 by design (tests/project/test_input_hardening.py,
    tests/jobs/test_job_cancel.py), so cases use the first cursor page and the first step of a cancel.
    An API key's ``expires_at`` must lie in the future, which a schema cannot say: past ones move a day
    ahead of now."""
    if isinstance(case.query, dict) and isinstance(case.query.get("cursor"), str):
        case.query["cursor"] = ""
    if isinstance(case.headers, dict) and isinstance(case.headers.get("X-Organization"), str):
        del case.headers["X-Organization"]  # a made-up organization is not yours: 403, always
    if not isinstance(case.body, dict):
        return
    if case.path.endswith("/cancel") and isinstance(case.body.get("confirm_token"), str):
        del case.body["confirm_token"]
    expires_at = case.body.get("expires_at") if case.path == "/api/v1/auth/api-keys" else None
    if isinstance(expires_at, str):
        try:
            moment = parse_datetime(expires_at)
        except ValueError:  # well-formed but out of range: the server says 400 itself
            moment = None
        if moment is not None and moment.tzinfo is not None and moment <= timezone.now():
            case.body["expires_at"] = (timezone.now() + timedelta(days=1)).isoformat()


def _default_pipeline(case) -> None:
    """Stateful scenarios follow links from a created job to its retry: a random ``pipeline_id`` in
    ``updated_config`` is a 404 (no such pipeline, documented) that Schemathesis would read as "the job just
    created is gone". They run the default pipeline instead; test_api covers unknown pipelines."""
    body = case.body.get("updated_config") if case.path.endswith("/retry") and isinstance(case.body, dict) else None
    if isinstance(body, dict) and _is_uuid(body.get("pipeline_id")):  # a malformed one stays: it is the test
        del body["pipeline_id"]


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


class OfflineResolver:
    """Stands for ``socket`` in the SSRF guard during the run: numeric addresses resolve, host names do
    not (as if offline). Random host names would otherwise cost real DNS lookups: slow, and dependent
    on the network. The guard itself is tested in tests/jobs/test_fetch.py and its own tests."""

    IPPROTO_TCP, gaierror = socket.IPPROTO_TCP, socket.gaierror

    @staticmethod
    def getaddrinfo(host, port, *args, **kwargs):
        return socket.getaddrinfo(host, port, *args, flags=socket.AI_NUMERICHOST, **kwargs)


@pytest.fixture
def world(settings, monkeypatch, owner, owner_key):
    global _world
    monkeypatch.setattr(ssrf, "socket", OfflineResolver)
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])  # every scope unthrottled
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    _world = World(owner, owner_key)
    yield _world
    _world = None
    # The run never revoked its own credentials.
    assert key_client(owner_key.raw_key).get("/api/v1/auth/me").status_code == 200
    assert jwt_client(owner).get("/api/v1/auth/me").status_code == 200


@schema.parametrize()
@pytest.mark.parametrize("auth_mode", AUTH_MODES)
# One world per operation and auth mode, shared by its generated cases (on purpose: they pile up in it).
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_api(case, auth_mode, world):
    SENT[case.operation.label, auth_mode] += 1
    case.call_and_validate(headers=world.headers[auth_mode])


@pytest.mark.parametrize("auth_mode", ["jwt", "api_key"])
def test_stateful(auth_mode, world):
    class Workflow(schema.as_state_machine()):
        def setup(self):
            # Each scenario in a fresh organization: a replayed scenario (Hypothesis shrinking it) meets
            # the same state, not the names and objects earlier scenarios left behind.
            membership = MembershipFactory(organization=OrganizationFactory(), role=Role.ADMIN)
            self.owner = membership.user
            self.key = ApiKeyFactory(organization=membership.organization, created_by=self.owner)
            world.protected.add(str(self.key.id))
            self.headers = World.credentials(self.owner, self.key)[auth_mode]

        def get_call_kwargs(self, case):
            SENT["stateful", auth_mode] += 1
            return {"headers": self.headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # As RecordingStateMachine's, naming the credentials as ours (not generated ones) to the checks.
            case.validate_response(response, additional_checks=additional_checks, headers=self.headers,
                                   transport_kwargs=kwargs or None, recorder=self.recorder)  # fmt: skip

        def teardown(self):
            assert jwt_client(self.owner).get("/api/v1/auth/me").status_code == 200  # never revoked by the run
            assert key_client(self.key.raw_key).get("/api/v1/auth/me").status_code == 200

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=DERANDOMIZE,
            database=None,
            deadline=None,
            suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
        )
    )


def test_the_run_is_not_silently_smaller(request):
    """Every operation ran in every auth mode, and a full default run sent at least MIN_CASES requests."""
    expected = {(result.ok().label, mode) for result in schema.get_all_operations() for mode in AUTH_MODES}
    expected |= {("stateful", "jwt"), ("stateful", "api_key")}
    ours = [item for item in request.session.items if item.path == request.path]
    ran = sum(1 for item in ours if item.originalname.startswith(("test_api", "test_stateful")))
    if ran < len(expected):
        pytest.skip("only part of the Schemathesis run was selected")
    missing = expected - set(SENT)
    assert not missing, f"sent nothing: {sorted(missing)}"
    assert sum(SENT.values()) >= MIN_CASES, sorted(SENT.items())
