"""Long query strings and chunked bodies are answered in the API's error format (item 14 of the security probe)."""

import contextlib
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.db import connection

from pipeline_project.lib.middleware import ChunkedBodyMiddleware
from tests.factories import PASSWORD

LOGIN = "/api/v1/auth/login"
ROOT = Path(__file__).resolve().parents[2]


def chunked(client, path, body: bytes, content_type="application/json", terminated=True, **extra):
    """POSTs ``body`` as a server hands a de-chunked body to Django: no CONTENT_LENGTH."""
    stream = io.BytesIO(body)
    environ = {"wsgi.input": stream, "CONTENT_TYPE": content_type, "HTTP_TRANSFER_ENCODING": "chunked", **extra}
    if terminated:
        environ["wsgi.input_terminated"] = True
    response = client.generic("POST", path, content_type=content_type, **environ)
    response.stream = stream
    return response


def error_of(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_a_chunked_json_body_is_read(client, owner):
    response = chunked(client, LOGIN, json.dumps({"username": "owner", "password": PASSWORD}).encode())
    assert response.status_code == 200 and response.json()["access"]


def test_a_chunked_json_body_with_wrong_credentials_is_a_401_not_an_empty_body(client, db):
    wrong = chunked(client, LOGIN, b'{"username": "nobody", "password": "wrong"}')
    assert error_of(wrong, 401)["code"] != "invalid"  # read: the credentials were checked
    empty = chunked(client, LOGIN, b"")
    assert set(error_of(empty, 400)["details"]) == {"username", "password"}


def test_a_chunked_body_over_the_limit_is_a_413(client, db, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"username": "x" * 2048, "password": "y"}).encode()
    response = chunked(client, LOGIN, body)
    assert error_of(response, 413)["code"] == "request_too_large"
    assert response.stream.tell() == 1025  # read no further than the limit + 1


def test_a_chunked_body_the_server_does_not_terminate_is_a_411(client, db):
    response = chunked(client, LOGIN, b'{"username": "a", "password": "b"}', terminated=False)
    assert error_of(response, 411)["code"] == "length_required"
    assert response.stream.tell() == 0


def test_a_chunked_multipart_upload_is_a_411_never_buffered(as_member):
    body = b"--x\r\nContent-Disposition: form-data; name=files; filename=a.txt\r\n\r\nhello\r\n--x--\r\n"
    response = chunked(as_member, "/api/v1/upload", body, content_type="multipart/form-data; boundary=x")
    assert error_of(response, 411)["code"] == "length_required"
    assert response.stream.tell() == 0


def test_a_chunked_body_under_asgi_is_read():
    scope = {"type": "http", "method": "POST", "path": LOGIN, "query_string": b"",
             "headers": [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")]}  # fmt: skip
    request = ASGIRequest(scope, io.BytesIO(b'{"a": 1}'))
    seen = ChunkedBodyMiddleware(lambda request: request)(request)
    assert seen.META["CONTENT_LENGTH"] == "8" and seen.body == b'{"a": 1}'


def test_a_long_query_string_is_a_414_in_the_error_format(as_member, settings):
    settings.REQUEST_MAX_QUERY_LENGTH = 100
    error = error_of(as_member.get("/api/v1/jobs", {"search": "x" * 100}), 414)
    assert error["code"] == "query_too_long" and "at most 100" in error["message"]
    assert as_member.get("/api/v1/jobs", {"search": "x" * 93}).status_code == 200  # "search=" + 93 = 100


def test_the_query_limit_is_for_api_paths_only(client, db, settings):
    settings.REQUEST_MAX_QUERY_LENGTH = 10
    assert client.get("/admin/login/", {"next": "/admin/" + "x" * 50}).status_code == 200


# --- through gunicorn, configured as the image runs it -------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn_from_the_dockerfile():
    """gunicorn with the Dockerfile's command line (on a loopback port, one worker), on the test database."""
    dockerfile = re.sub(r"\\\n\s*", "", (ROOT / "Dockerfile").read_text())  # continuation lines joined
    command = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    port = free_port()
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--workers") + 1] = "1"
    database = connection.settings_dict
    credentials = f"{quote(database['USER'], safe='')}:{quote(database['PASSWORD'] or '', safe='')}"
    environment = {**os.environ, "DATABASE_URL": f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/"
                   f"{database['NAME']}"}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_through_gunicorn_chunked_bodies_are_read_and_long_queries_answered_in_json():
    with gunicorn_from_the_dockerfile() as conn:
        body = iter([b'{"username": "nobody", ', b'"password": "wrong"}'])
        conn.request("POST", LOGIN, body=body, headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 401, response.read()  # the body was read: its credentials were checked
        response.read()
        conn.request("GET", "/api/v1/jobs?search=" + "x" * 6000)  # past gunicorn's default request line (4094)
        response = conn.getresponse()
        assert response.status == 414
        assert json.loads(response.read())["error"]["code"] == "query_too_long"
