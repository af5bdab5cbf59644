"""Downloading a url source without server-side request forgery.

The host is resolved once, every address checked (``pipeline_project.lib.ssrf``), and the
connection made to the checked address (so DNS cannot answer differently the second time),
with the original host name for the Host header, TLS SNI and certificate check. Redirects
are followed by hand, each target checked the same way. Size and time are capped.
urllib3 (what requests runs on) is used directly because it lets us pin the address.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

from pipeline_project.lib.ssrf import UnsafeURL, pinned_request
from pipelines.stages.base import StageError

MAX_REDIRECTS = 5
CHUNK = 64 * 1024


@dataclass
class Download:
    file: tempfile.SpooledTemporaryFile
    size: int
    url: str  # after redirects
    content_type: str
    name: str


def fetch(url: str, *, max_bytes: int, timeout: float, check: Callable[[], None] | None = None) -> Download:
    """Downloads ``url``; ``check()``, if given, is called before each request and after each
    chunk, and may raise to abandon the download (a cancellation)."""
    check = check or (lambda: None)
    for _ in range(MAX_REDIRECTS + 1):
        check()
        response = _request(url, timeout)
        if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            url = urljoin(url, response.headers["Location"])
            response.release_conn()
            continue
        if response.status >= 400:
            response.release_conn()
            transient = response.status in (408, 425, 429) or response.status >= 500
            raise StageError("fetch_failed", f"The server answered HTTP {response.status}.", transient=transient)
        return _download(response, url, max_bytes, check)
    raise StageError("too_many_redirects", f"More than {MAX_REDIRECTS} redirects.")


def _request(url: str, timeout: float):
    try:
        return pinned_request("GET", url, timeout=timeout, headers={"User-Agent": "pipeline-service/1.0"})
    except UnsafeURL as exc:
        raise StageError("unsafe_url", str(exc)) from None
    except urllib3.exceptions.TimeoutError:
        raise StageError("fetch_timeout", f"No answer within {timeout} s.", transient=True) from None
    except urllib3.exceptions.HTTPError as exc:
        raise StageError("fetch_failed", f"Could not fetch the URL: {type(exc).__name__}.", transient=True) from None


def _download(response, url: str, max_bytes: int, check: Callable[[], None]) -> Download:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        response.release_conn()
        raise StageError("too_large", f"The document is larger than {max_bytes} bytes.")
    spool = tempfile.SpooledTemporaryFile(max_size=CHUNK * 16)
    size = 0
    try:
        while chunk := response.read1(CHUNK):  # whatever each read brings: a slow server is checked on as it drips
            check()
            size += len(chunk)
            if size > max_bytes:
                raise StageError("too_large", f"The document is larger than {max_bytes} bytes.")
            spool.write(chunk)
    except urllib3.exceptions.HTTPError as exc:
        spool.close()
        raise StageError("fetch_failed", f"The download broke off: {type(exc).__name__}.", transient=True) from None
    except BaseException:
        spool.close()
        raise
    finally:
        response.release_conn()
    spool.seek(0)
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "download"
    return Download(spool, size, url, response.headers.get("Content-Type", ""), name)
