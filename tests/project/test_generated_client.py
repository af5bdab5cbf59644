"""A typed Python client generated from our OpenAPI schema drives the whole API, as a user's would.

How it works, for a newcomer:

- Once per module, the schema is written with ``manage.py spectacular --format openapi-json`` (what
  ``/api/schema/`` serves) and openapi-python-client (a dev dependency) generates a client package from
  it into a temporary folder, with ``--fail-on-warning``: a schema the generator cannot fully represent
  fails here. The package is imported from there.
- Every request goes through that client only: ``<operation>.sync_detailed(...)`` and ``.parsed``,
  never raw HTTP. The client talks to the app in process through ``httpx.WSGITransport`` (passed in
  ``httpx_args``), so it uses the test database; ``raise_on_unexpected_status=True``, so a status the
  schema does not document fails the test, like an error response that does not decode as ``Error``.
- ``call(sdk, client, "jobs_list", priority="high")`` is ``jobs_list.sync_detailed(client=client, priority=...)``
  with the plain values turned into the types the client declares for them (its models, enums, UUIDs,
  datetimes), strictly: a value of the wrong type fails, as it would for a user with a type checker.
  So the tests read like the API docs and do not depend on the names of generated model classes.
- Queued jobs are run by a real RQ worker of our class in process (burst ``jobs.worker.Worker``) between
  polls of the job (``finished``); the url job fetches its document from a real HTTP server on loopback, allowed through
  ``SSRF_ALLOWED_NETWORKS``.

Where the client cannot be used without a workaround, the schema is wrong: the test is written the
way a user would write it and fails until the schema is fixed.
"""

import datetime
import importlib
import io
import json
import subprocess
import sys
import threading
import types
import typing
import uuid
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.core.management import call_command
from rq import Queue

from jobs.worker import Worker
from pipeline_project.lib.redis import get_redis
from pipeline_project.wsgi import application
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)  # the worker runs on committed rows, like in production

PACKAGE = "pipeline_client"
DOCUMENT = b"<html><body><h1>Fetched</h1><p>Served over HTTP on loopback.</p></body></html>"


# --- the generated client -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """The generated package: ``sdk.api[operation_id]`` is an operation's module, ``sdk.models`` the
    models, ``sdk.Client`` / ``sdk.AuthenticatedClient`` / ``sdk.File`` the client's own types."""
    folder = tmp_path_factory.mktemp("generated_client")
    schema = folder / "openapi.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(schema))
    config = folder / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatting of the generated code: not needed
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema), "--meta", "none",
               "--output-path", str(folder / PACKAGE), "--config", str(config), "--fail-on-warning"]  # fmt: skip
    generated = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0, f"openapi-python-client failed:\n{generated.stdout}\n{generated.stderr}"

    sys.path.insert(0, str(folder))
    try:
        package = importlib.import_module(PACKAGE)
        api = {}
        for tag in (folder / PACKAGE / "api").iterdir():
            for module in tag.glob("*.py"):
                if module.stem != "__init__":
                    api[module.stem] = importlib.import_module(f"{PACKAGE}.api.{tag.name}.{module.stem}")
        yield types.SimpleNamespace(
            api=api,
            models=importlib.import_module(f"{PACKAGE}.models"),
            Client=package.Client,
            AuthenticatedClient=package.AuthenticatedClient,
            File=importlib.import_module(f"{PACKAGE}.types").File,
            Unset=importlib.import_module(f"{PACKAGE}.types").Unset,
        )
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _in_process(sdk_class, **kwargs):
    """A client of ``sdk_class`` talking to our WSGI app in process (the test database)."""
    transport = httpx.WSGITransport(app=application)
    return sdk_class(base_url="http://localhost", httpx_args={"transport": transport},
                     raise_on_unexpected_status=True, **kwargs)  # fmt: skip


def call(sdk, client, operation_id: str, *args, **kwargs):
    """``<operation_id>.sync_detailed(*args, client=client, **kwargs)``, the arguments turned into the
    types that function declares (see ``typed``). Returns the client's ``Response``."""
    function = sdk.api[operation_id].sync_detailed
    hints = typing.get_type_hints(function)
    names = [name for name in hints if name not in ("client", "return")]
    arguments = dict(zip(names, args, strict=False)) | kwargs
    for name, value in arguments.items():
        if name not in hints:
            raise TypeError(f"{operation_id}() has no parameter {name!r}; it takes {names}")
        arguments[name] = typed(sdk, value, hints[name], f"{operation_id}({name})")
    return function(client=client, **arguments)


def typed(sdk, value, annotation, where: str):
    """``value`` as the type the client declares (``annotation``): dicts become its models (checked field
    by field), strings its enums, UUIDs or datetimes. Anything else must already have that type."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not sdk.Unset]
        if value is None and type(None) in members:
            return None
        problems = []
        for member in members:
            if member is type(None):
                continue
            try:
                return typed(sdk, value, member, where)
            except (TypeError, ValueError) as exc:
                problems.append(str(exc))
        raise TypeError(f"{where}: {value!r} fits none of {annotation}: {problems}")
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise TypeError(f"{where}: the client declares a list, not {value!r}")
        return [typed(sdk, element, item, f"{where}[]") for element in value]
    if annotation is typing.Any or (isinstance(annotation, type) and isinstance(value, annotation)):
        return value
    if isinstance(annotation, type) and isinstance(value, str):
        if issubclass(annotation, Enum):
            return annotation(value)
        if annotation is uuid.UUID:
            return uuid.UUID(value)
        if annotation is datetime.datetime:
            return datetime.datetime.fromisoformat(value)
    if isinstance(annotation, type) and hasattr(annotation, "from_dict") and isinstance(value, dict):
        module = sys.modules[annotation.__module__]
        fields = typing.get_type_hints(annotation, {**vars(sdk.models), **vars(module)})
        fields.pop("additional_properties", None)
        if not fields:  # a free-form object (a map): its keys are its additional properties
            return annotation.from_dict(value)
        unknown = set(value) - set(fields)
        if unknown:
            raise TypeError(f"{where}: {annotation.__name__} has no field {sorted(unknown)}")
        return annotation(**{name: typed(sdk, v, fields[name], f"{where}.{name}") for name, v in value.items()})
    raise TypeError(f"{where}: the client declares {annotation}, not {type(value).__name__} ({value!r})")


def parsed(response, status: int):
    """The response's decoded body, after checking its status."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.parsed


def error(sdk, response, status: int, code: str):
    """An error response, decoded by the client as the ``Error`` model."""
    body = parsed(response, status)
    assert isinstance(body, sdk.models.Error), f"{status} not decoded as Error: {body!r}"
    assert body.error.code == code, body.error
    return body.error


def run_worker():
    """Runs every queued job with a real RQ worker, in process, until the queues are empty."""
    queues = [Queue(name, connection=get_redis()) for name in ("high", "default", "low")]
    Worker(queues, connection=get_redis()).work(burst=True, with_scheduler=False)


def finished(sdk, client, job_id, polls: int = 3):
    """Polls a job until it is finished, letting the worker run between polls."""
    for _ in range(polls):
        job = parsed(call(sdk, client, "jobs_retrieve", job_id), 200)
        if job.status not in ("queued", "processing", "cancelling"):
            return job
        run_worker()
    raise AssertionError(f"job {job_id} still {job.status} after {polls} polls")


@pytest.fixture
def anonymous(sdk):
    return _in_process(sdk.Client)


@pytest.fixture
def logged_in(sdk, anonymous, owner):
    """The owner (admin of ``org``), logged in through the client: an authenticated client (JWT)."""
    tokens = parsed(call(sdk, anonymous, "auth_login_create", body={"username": "owner", "password": PASSWORD}), 200)
    return _in_process(sdk.AuthenticatedClient, token=tokens.access)


@pytest.fixture
def document_server(settings):
    """A real HTTP server on loopback serving one HTML page, allowed for url jobs for the test."""
    settings.SSRF_ALLOWED_NETWORKS = ["127.0.0.1/32"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(DOCUMENT)))
            self.end_headers()
            self.wfile.write(DOCUMENT)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


# --- the flows ----------------------------------------------------------------------------------


def test_public_operations_take_a_client_without_credentials(sdk):
    """Logging in is what a user does before having a token: the client must not demand one."""
    for operation_id in ("auth_login_create", "auth_refresh_create", "auth_logout_create"):
        declared = typing.get_type_hints(sdk.api[operation_id].sync_detailed)["client"]
        accepted = typing.get_args(declared) or (declared,)
        assert sdk.Client in accepted, f"{operation_id} declares client: {declared}"


def test_log_in_refresh_log_out_and_api_keys(sdk, anonymous, owner):
    tokens = parsed(call(sdk, anonymous, "auth_login_create", body={"username": "owner", "password": PASSWORD}), 200)
    assert tokens.token_type == "Bearer" and tokens.expires_in > 0
    error(sdk, call(sdk, anonymous, "auth_login_create", body={"username": "owner", "password": "wrong"}), 401,
          "no_active_account")  # fmt: skip
    jwt = _in_process(sdk.AuthenticatedClient, token=tokens.access)
    me = parsed(call(sdk, jwt, "auth_me_retrieve"), 200)
    assert me.user.username == "owner" and me.auth_method == "jwt" and me.role == "admin"

    refreshed = parsed(call(sdk, anonymous, "auth_refresh_create", body={"refresh": tokens.refresh}), 200)
    error(sdk, call(sdk, anonymous, "auth_refresh_create", body={"refresh": tokens.refresh}), 401, "token_not_valid")
    assert parsed(call(sdk, anonymous, "auth_logout_create", body={"refresh": refreshed.refresh}), 204) is None
    error(sdk, call(sdk, anonymous, "auth_refresh_create", body={"refresh": refreshed.refresh}), 401, "token_not_valid")

    created = parsed(call(sdk, jwt, "auth_api_keys_create", body={"name": "ci", "scopes": ["jobs:read"]}), 201)
    assert created.key and created.status == "active" and created.scopes == ["jobs:read"]
    by_key = _in_process(sdk.AuthenticatedClient, token=created.key, prefix="", auth_header_name="X-API-Key")
    me = parsed(call(sdk, by_key, "auth_me_retrieve"), 200)
    assert me.auth_method == "api_key" and me.api_key.id == created.id and me.permissions == ["jobs:read"]
    error(sdk, call(sdk, by_key, "pipelines_create", body={"name": "x", "config": {"stages": [{"name": "detect"}]}}),
          403, "permission_denied")  # fmt: skip

    keys = parsed(call(sdk, jwt, "auth_api_keys_list"), 200)
    assert [key.id for key in keys.items] == [created.id] and keys.total == 1
    assert parsed(call(sdk, jwt, "auth_api_keys_retrieve", created.id), 200).name == "ci"
    assert parsed(call(sdk, jwt, "auth_api_keys_destroy", created.id), 204) is None
    error(sdk, call(sdk, by_key, "auth_me_retrieve"), 401, "api_key_revoked")
    assert parsed(call(sdk, jwt, "auth_api_keys_retrieve", created.id), 200).status == "revoked"


def test_text_url_and_upload_jobs_run_and_their_results_are_fetched(sdk, logged_in, document_server):
    text = parsed(call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "Hello, world."}), 201)
    url = parsed(call(sdk, logged_in, "jobs_create",
                      body={"source_type": "url", "source_uri": f"{document_server}/page.html"}), 201)  # fmt: skip
    upload = {"files": [sdk.File(payload=io.BytesIO(b"Uploaded notes."), file_name="notes.txt")],
              "priority": "high", "metadata": {"customer": "acme"}}  # fmt: skip
    uploaded = parsed(call(sdk, logged_in, "upload_create", body=upload), 201).jobs[0]
    assert uploaded.priority == "high" and uploaded.metadata.to_dict() == {"customer": "acme"}
    assert {text.status, url.status, uploaded.status} == {"queued"}
    error(sdk, call(sdk, logged_in, "jobs_result_retrieve", text.id), 409, "job_not_completed")

    expected = {
        text.id: "Hello, world.",
        url.id: "Fetched\nServed over HTTP on loopback.",
        uploaded.id: "Uploaded notes.",
    }
    for job_id, content in expected.items():
        job = finished(sdk, logged_in, job_id)
        assert job.status == "completed", job.error
        assert job.progress.percent == 100 and job.completed_at is not None
        result = parsed(call(sdk, logged_in, "jobs_result_retrieve", job_id), 200)
        assert result.text == content and result.text_size == len(content.encode())
        assert parsed(call(sdk, logged_in, "jobs_result_text_retrieve", job_id), 200) == content
    files = parsed(call(sdk, logged_in, "jobs_files_list", uploaded.id), 200)
    assert [file.name for file in files.items] == ["notes.txt"] and files.items[0].status == "completed"


def test_draft_jobs_take_files_then_start(sdk, logged_in):
    draft = parsed(call(sdk, logged_in, "jobs_create", body={"source_type": "upload"}), 201)
    assert draft.status == "draft"
    body = {"files": [sdk.File(payload=io.BytesIO(b"one"), file_name="a.txt"),
                      sdk.File(payload=io.BytesIO(b"two"), file_name="b.txt")]}  # fmt: skip
    added = parsed(call(sdk, logged_in, "jobs_files_create", draft.id, body=body), 201).files
    assert [file.name for file in added] == ["a.txt", "b.txt"]
    assert parsed(call(sdk, logged_in, "jobs_files_destroy", draft.id, str(added[1].id)), 204) is None
    assert parsed(call(sdk, logged_in, "jobs_start_create", draft.id), 200).status == "queued"
    error(sdk, call(sdk, logged_in, "jobs_start_create", draft.id), 409, "invalid_state")
    assert finished(sdk, logged_in, draft.id).status == "completed"
    assert parsed(call(sdk, logged_in, "jobs_result_text_retrieve", draft.id), 200) == "one"


def test_job_lists_filter_and_page_with_cursors(sdk, logged_in):
    def create(**body):
        return parsed(call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "x", **body}), 201).id

    done = [create(priority="high", file_name=f"invoice-{n}.txt") for n in range(3)]
    run_worker()
    queued = [create(priority="low") for _ in range(4)]
    draft = create(start=False)

    def ids(**filters):
        return {job.id for job in parsed(call(sdk, logged_in, "jobs_list", **filters), 200).items}

    assert ids(status=["completed"]) == set(done) and ids(status=["queued"]) == set(queued)
    assert ids(status=["draft", "completed"]) == {draft, *done}
    assert ids(priority="high") == set(done) and ids(priority="low") == set(queued)
    assert ids(search="invoice") == set(done) and ids(search="nothing-like-it") == set()
    page = parsed(call(sdk, logged_in, "jobs_list", page=2, page_size=3), 200)
    assert page.total == 8 and page.page == 2 and len(page.items) == 3

    seen, cursor = [], ""
    while cursor is not None:  # follow next_cursor to the end
        page = parsed(call(sdk, logged_in, "jobs_list", cursor=cursor, page_size=3, sort_order="asc"), 200)
        seen += [job.id for job in page.items]
        cursor = page.next_cursor
    assert seen == [*done, *queued, draft]

    events = parsed(call(sdk, logged_in, "jobs_events_list", done[0]), 200)
    assert [event.to_status for event in events.items] == ["queued", "processing", "completed"]
    assert events.next_cursor is None


def test_pipelines_are_created_versioned_and_validated(sdk, logged_in):
    stages = parsed(call(sdk, logged_in, "pipelines_stages_list"), 200)
    assert {"detect", "extract_text"} <= {stage.name for stage in stages}
    config = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": 10}}]}
    valid = parsed(call(sdk, logged_in, "pipelines_validate_create", body={"config": config}), 200)
    assert valid.valid and valid.normalized.to_dict()["stages"][1]["params"]["max_pages"] == 10
    too_few = {"stages": [{"name": "extract_text", "params": {"max_pages": 0}}]}  # typed right, out of range
    problem = error(sdk, call(sdk, logged_in, "pipelines_validate_create", body={"config": too_few}), 400, "invalid")
    assert "config.stages[0].params.max_pages" in problem.details.to_dict()

    pipeline = parsed(call(sdk, logged_in, "pipelines_create",
                           body={"name": "contracts", "config": config, "is_active": True}), 201)  # fmt: skip
    assert pipeline.version == 1
    error(sdk, call(sdk, logged_in, "pipelines_create", body={"name": "contracts", "config": config}), 409,
          "name_taken")  # fmt: skip
    assert pipeline.id in {p.id for p in parsed(call(sdk, logged_in, "pipelines_list"), 200).items}
    assert parsed(call(sdk, logged_in, "pipelines_retrieve", pipeline.id), 200).name == "contracts"
    changed = parsed(call(sdk, logged_in, "pipelines_partial_update", pipeline.id,
                          body={"config": {"stages": [{"name": "detect"}]}}), 200)  # fmt: skip
    assert changed.version == 2
    replaced = parsed(call(sdk, logged_in, "pipelines_update", pipeline.id,
                           body={"name": "contracts-v3", "description": "all", "config": config}), 200)  # fmt: skip
    assert replaced.version == 3 and replaced.name == "contracts-v3"
    versions = parsed(call(sdk, logged_in, "pipelines_versions_list", pipeline.id), 200)
    assert sorted(version.version for version in versions.items) == [1, 2, 3]

    job = parsed(call(sdk, logged_in, "jobs_create",
                      body={"source_type": "text", "text": "x", "pipeline_id": pipeline.id}), 201)  # fmt: skip
    assert job.pipeline.to_dict() == {"id": str(pipeline.id), "name": "contracts-v3", "version": 3}
    assert parsed(call(sdk, logged_in, "pipelines_destroy", pipeline.id), 204) is None  # a job used it: deactivated
    assert parsed(call(sdk, logged_in, "pipelines_retrieve", pipeline.id), 200).is_active is False
    unused = parsed(call(sdk, logged_in, "pipelines_create", body={"name": "unused", "config": config}), 201)
    assert parsed(call(sdk, logged_in, "pipelines_destroy", unused.id), 204) is None
    error(sdk, call(sdk, logged_in, "pipelines_retrieve", unused.id), 404, "not_found")


def test_cancel_takes_two_steps_and_a_cancelled_job_can_be_retried(sdk, logged_in):
    job = parsed(call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "x", "priority": "low"}), 201)
    confirmation = parsed(call(sdk, logged_in, "jobs_cancel_create", job.id, body={}), 202)
    assert confirmation.confirm_token and confirmation.expires_in > 0
    error(sdk, call(sdk, logged_in, "jobs_cancel_create", job.id, body={"confirm_token": "forged"}), 400,
          "invalid_confirm_token")  # fmt: skip
    cancelled = parsed(call(sdk, logged_in, "jobs_cancel_create", job.id,
                            body={"confirm_token": confirmation.confirm_token}), 200)  # fmt: skip
    assert cancelled.status == "cancelled"

    retry = parsed(
        call(sdk, logged_in, "jobs_retry_create", job.id, body={"updated_config": {"priority": "high"}}), 201
    )
    assert retry.status == "queued" and retry.retried_from == job.id and retry.priority == "high"
    assert parsed(call(sdk, logged_in, "jobs_retrieve", job.id), 200).retries == [retry.id]
    assert parsed(call(sdk, logged_in, "jobs_destroy", retry.id), 204) is None  # the one-step cancel
    assert parsed(call(sdk, logged_in, "jobs_retrieve", retry.id), 200).status == "cancelled"


def test_conflicts_decode_as_the_error_model(sdk, logged_in):
    job = parsed(call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "x"}), 201)
    assert finished(sdk, logged_in, job.id).status == "completed"
    assert error(sdk, call(sdk, logged_in, "jobs_cancel_create", job.id, body={}), 409, "invalid_state").message
    error(sdk, call(sdk, logged_in, "jobs_destroy", job.id), 409, "invalid_state")
    error(sdk, call(sdk, logged_in, "jobs_retry_create", job.id, body={}), 409, "invalid_state")
    error(sdk, call(sdk, logged_in, "jobs_start_create", job.id), 409, "invalid_state")
    body = {"files": [sdk.File(payload=io.BytesIO(b"late"), file_name="late.txt")]}
    error(sdk, call(sdk, logged_in, "jobs_files_create", job.id, body=body), 409, "invalid_state")

    first = call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "a"}, idempotency_key="k-1")
    again = call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "a"}, idempotency_key="k-1")
    assert parsed(first, 201).id == parsed(again, 200).id
    other = call(sdk, logged_in, "jobs_create", body={"source_type": "text", "text": "b"}, idempotency_key="k-1")
    error(sdk, other, 409, "idempotency_key_reused")
