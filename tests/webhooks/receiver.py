"""A real HTTP receiver on loopback for webhook tests.

``Receiver(responses)`` answers each POST with the next scripted ``Response`` (then 200s), records
every request (path, headers, body), counts distinct ``webhook-id`` values, as a receiver that
deduplicates would, and the TCP connections it accepted (it keeps them alive, HTTP/1.1). Use it as
a context manager or call ``start()``/``stop()``::

    with Receiver([Response(500), Response(200)]) as receiver:
        ...deliver to receiver.url("/hook")...
    assert receiver.requests[0].headers["webhook-id"] == ...
"""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds slept before answering (past the client's timeout: a timeout)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, responses: list[Response] | None = None):
        self.responses = list(responses or [])
        self.requests: list[Request] = []
        self.message_ids: dict[str, int] = {}  # webhook-id -> how many times received
        self.connections = 0  # TCP connections accepted
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle --
    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                response = receiver._record(Request(self.command, self.path, headers, body))
                if response.delay:
                    time.sleep(response.delay)
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout)

            do_POST = _handle  # noqa: N815 (http.server's naming)
            do_GET = _handle  # noqa: N815

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- use --
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *responses: Response) -> None:
        with self._lock:
            self.responses.extend(responses)

    def _record(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            message_id = request.headers.get("webhook-id")
            if message_id:
                self.message_ids[message_id] = self.message_ids.get(message_id, 0) + 1
            return self.responses.pop(0) if self.responses else Response()

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]
