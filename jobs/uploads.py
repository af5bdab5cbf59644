"""Receiving files: streamed to temporary files (never held in memory), size and count
enforced while streaming, type checked from the content."""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework import exceptions

from pipeline_project.lib.errors import ApplicationError
from pipelines.detection import HEAD_SIZE, SUPPORTED, Detection, detect


class FileTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "file_too_large"


class TooManyFiles(exceptions.APIException):
    status_code = 400
    default_code = "too_many_files"


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams each file to a temporary file and stops the request as soon as a file grows
    past ``UPLOAD_MAX_FILE_SIZE`` (413) or the files outnumber ``max_files`` (400)."""

    def __init__(self, request=None, *, max_files: int):
        super().__init__(request)
        self.max_files, self.files_seen, self.received = max_files, 0, 0

    def new_file(self, *args, **kwargs):
        self.files_seen += 1
        if self.files_seen > self.max_files:
            raise TooManyFiles(f"At most {self.max_files} files per request.")
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_FILE_SIZE:
            self.file.close()
            raise FileTooLarge(f"{self.file_name} is larger than {settings.UPLOAD_MAX_FILE_SIZE} bytes.")
        return super().receive_data_chunk(raw_data, start)


def use_limited_upload_handler(request, *, max_files: int) -> None:
    """Call before touching ``request.data``/``request.FILES``."""
    request._request.upload_handlers = [LimitedUploadHandler(request._request, max_files=max_files)]


@dataclass(frozen=True, slots=True)
class Upload:
    file: UploadedFile
    detection: Detection
    sha256: str


def inspect(uploaded: UploadedFile) -> Upload:
    """Checks a received file (400 empty, 413 too large, 415 unsupported type) and hashes it."""
    if uploaded.size == 0:
        raise ApplicationError(f"{uploaded.name} is empty.", code="empty_file", details={"files": [uploaded.name]})
    if uploaded.size > settings.UPLOAD_MAX_FILE_SIZE:
        raise FileTooLarge(f"{uploaded.name} is larger than {settings.UPLOAD_MAX_FILE_SIZE} bytes.")
    uploaded.seek(0)
    detection = detect(uploaded.read(HEAD_SIZE), uploaded.name)
    if detection is None:
        raise exceptions.UnsupportedMediaType(
            uploaded.content_type or "unknown",
            detail=f"{uploaded.name}: unsupported content. Accepted: {', '.join(SUPPORTED)}.",
        )
    digest = hashlib.sha256()
    uploaded.seek(0)
    for chunk in uploaded.chunks():
        digest.update(chunk)
    uploaded.seek(0)
    return Upload(uploaded, detection, digest.hexdigest())
