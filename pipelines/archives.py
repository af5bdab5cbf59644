"""Zip-based documents (DOCX today; XLSX, PPTX, ODT, EPUB would be the same) checked before a library opens them.

A zip's sizes are claims: the central directory and local headers can say 4 KB for a member
that inflates to 900 MiB, and ``zipfile`` trusts them (``ZipFile.read`` inflates a whole
member in one call before truncating it to the declared size). ``checked_zip`` inflates
every member itself, in small chunks, counting the bytes that actually come out, and stops
at the limit. A member passes only if it inflates to exactly its declared size with the
right CRC; then a library reading the same bytes inflates exactly what was counted.
"""

import copy
import io
import zipfile
import zlib

from pipelines.stages.base import StageError

MiB = 1024 * 1024
_CHUNK = 64 * 1024
# zipfile inflates these in bounded steps (``decompress(data, max_length)``); its bzip2 and LZMA
# readers inflate a whole compressed block at once, so one small block could still explode.
# OOXML (ECMA-376 part 2), ODF and EPUB allow only these two methods anyway.
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def checked_zip(data: bytes, *, limit_bytes: int, kind: str = "archive") -> io.BytesIO:
    """A fresh stream over ``data`` once every member has been inflated within ``limit_bytes`` in all.

    Raises ``StageError`` ``too_large_decompressed`` as soon as more than ``limit_bytes`` came out
    (whatever the headers declare), and ``invalid_document`` for a broken or dishonest archive
    (bad CRC, a size that does not match the content, encryption, another compression method).
    ``kind`` names the format in messages ("DOCX").
    """
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                total += _inflated_size(archive, info, budget=limit_bytes - total, kind=kind)
                if total > limit_bytes:
                    raise StageError("too_large_decompressed",
                                     f"The {kind} unpacks to more than its limit of {_mib(limit_bytes)}.")  # fmt: skip
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as exc:
        raise StageError("invalid_document", f"The {kind} is not a valid zip archive: {exc}.") from None
    return io.BytesIO(data)


def _inflated_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, budget: int, kind: str) -> int:
    """Bytes ``info`` really inflates to, counted chunk by chunk; stops once past ``budget``."""
    if info.flag_bits & 0x1:
        raise StageError("invalid_document", f"The {kind} has an encrypted member ({info.filename!r}).")
    if info.compress_type not in _METHODS:
        raise StageError("invalid_document", f"The {kind} member {info.filename!r} uses compression method "
                         f"{info.compress_type}; only stored and deflated are accepted.")  # fmt: skip
    # zipfile stops a member at its declared size; a copy declaring more lets the real
    # stream run on, so that what it inflates to is counted here, not believed.
    unbounded = copy.copy(info)
    unbounded.file_size = 1 << 62
    size = 0
    with archive.open(unbounded) as stream:  # its CRC is checked when the stream ends
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > budget:
                return size
    if size != info.file_size:
        raise StageError("invalid_document", f"The {kind} member {info.filename!r} declares {info.file_size} "
                         f"bytes but holds {size}.")  # fmt: skip
    return size


def _mib(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size} bytes"
