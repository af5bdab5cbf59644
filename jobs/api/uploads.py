"""Receiving files over HTTP: streamed to temporary files (never held in memory), size and
count enforced while streaming. What a file may contain is checked by ``jobs.uploads``."""

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from jobs.uploads import file_too_large
from pipeline_project.lib.errors import ApplicationError


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams each file to a temporary file and stops the request as soon as a file grows
    past ``UPLOAD_MAX_FILE_SIZE`` (413) or the files outnumber ``max_files`` (400)."""

    def __init__(self, request=None, *, max_files: int):
        super().__init__(request)
        self.max_files, self.files_seen, self.received = max_files, 0, 0

    def new_file(self, *args, **kwargs):
        self.files_seen += 1
        if self.files_seen > self.max_files:
            raise ApplicationError(f"At most {self.max_files} files per request.", code="too_many_files")
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_FILE_SIZE:
            self.file.close()
            raise file_too_large(self.file_name)
        return super().receive_data_chunk(raw_data, start)


def received_files(request, *, max_files: int) -> list[UploadedFile]:
    """The request's files (field ``files``, or ``file``), received through ``LimitedUploadHandler``;
    400 if there are none. Call before anything reads ``request.data``."""
    request._request.upload_handlers = [LimitedUploadHandler(request._request, max_files=max_files)]
    received = request.FILES.getlist("files") + request.FILES.getlist("file")
    if request.POST.getlist("files") or request.POST.getlist("file"):  # text parts: none of them is a file
        raise ApplicationError("Send documents as file parts (with a filename).", code="invalid",
                               details={"files": ["A part named files has no filename: not a file."]})  # fmt: skip
    if not received:
        raise ApplicationError("Send one or more files in the field `files`.", code="invalid",
                               details={"files": ["No file was submitted."]})  # fmt: skip
    return received
