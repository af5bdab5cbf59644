"""Received files, checked before they become job files: not empty, within the size limit,
a supported type (from the content, not the name or the client's claim), hashed.
Receiving them over HTTP (streamed, limited while streaming) is ``jobs/api/uploads.py``."""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from pipeline_project.lib.errors import ApplicationError, TooLargeError, UnsupportedMediaTypeError
from pipelines.detection import HEAD_SIZE, SUPPORTED, Detection, detect


@dataclass(frozen=True, slots=True)
class Upload:
    file: UploadedFile
    detection: Detection
    sha256: str


def file_too_large(name: str) -> TooLargeError:
    return TooLargeError(f"{name} is larger than {settings.UPLOAD_MAX_FILE_SIZE} bytes.", code="file_too_large")


def inspect(uploaded: UploadedFile) -> Upload:
    """Checks a received file (400 empty, 413 too large, 415 unsupported type) and hashes it."""
    if uploaded.size == 0:
        raise ApplicationError(f"{uploaded.name} is empty.", code="empty_file", details={"files": [uploaded.name]})
    if uploaded.size > settings.UPLOAD_MAX_FILE_SIZE:
        raise file_too_large(uploaded.name)
    uploaded.seek(0)
    detection = detect(uploaded.read(HEAD_SIZE), uploaded.name)
    if detection is None:
        raise UnsupportedMediaTypeError(f"{uploaded.name}: unsupported content. Accepted: {', '.join(SUPPORTED)}.")
    digest = hashlib.sha256()
    uploaded.seek(0)
    for chunk in uploaded.chunks():
        digest.update(chunk)
    uploaded.seek(0)
    return Upload(uploaded, detection, digest.hexdigest())
