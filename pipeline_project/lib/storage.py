"""Where uploaded and generated files live in the default storage (local disk or S3), and
how a stored file is served."""

import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect

MAX_NAME_LENGTH = 120


def safe_filename(name: str) -> str:
    """A name safe on any file system and in a URL path: no directories, no NUL or control
    characters, no leading dots, at most ``MAX_NAME_LENGTH`` characters (extension kept)."""
    name = unicodedata.normalize("NFKC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"[^\w.\- ]", "_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    ext = f".{ext}" if ext else ""
    stem = stem[: MAX_NAME_LENGTH - len(ext)]
    return f"{stem}{ext}" if stem else f"file{ext}"


def upload_path(organization_id, job_id, original_name: str) -> str:
    """``uploads/<org>/<job>/<uuid>/<sanitized name>``: unique without renaming the file."""
    return f"uploads/{organization_id}/{job_id}/{uuid.uuid4().hex}/{safe_filename(original_name)}"


def display_name(name: str, default: str = "file") -> str:
    """A client-supplied file name fit to store and show: path, NUL and control characters
    removed, at most 255 characters. The stored object's name comes from ``safe_filename``."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or default


def text_response(obj, inline_field: str, stored_field: str, content_type: str) -> HttpResponse:
    """``obj``'s text as a response: the stored object its ``stored_field`` names, when set
    (``stored_text_response``), else its ``inline_field`` (only then read: it may be deferred)."""
    if stored := getattr(obj, stored_field):
        return stored_text_response(stored, content_type=content_type)
    return HttpResponse(getattr(obj, inline_field), content_type=content_type)


def stored_text_response(name: str, *, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
    """The stored UTF-8 text ``name`` as a response: on S3 a redirect to a presigned URL (the
    bytes never pass through the web process), on local disk streamed (with its length)."""
    if settings.AWS_STORAGE_BUCKET_NAME:
        return HttpResponseRedirect(default_storage.url(name))
    return FileResponse(default_storage.open(name, "rb"), content_type=content_type)


@contextmanager
def local_path(name: str) -> Iterator[str]:
    """A path on local disk holding the stored object ``name``: the stored file itself on local
    storage; on remote storage (S3) a temporary copy, deleted afterwards."""
    try:
        path = default_storage.path(name)
    except NotImplementedError:  # no local path: S3 and the like
        path = None
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="document-") as copy:
        with default_storage.open(name, "rb") as stored:
            shutil.copyfileobj(stored, copy, 1024 * 1024)
        copy.flush()
        yield copy.name
