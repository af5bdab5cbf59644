"""Zip-based documents are inflated and counted before a library opens them: headers are not believed."""

import io
import struct
import tracemalloc
import zipfile

import pytest

from pipelines.archives import checked_zip
from pipelines.stages import REGISTRY, StageContext, StageError
from tests.pipelines.documents import docx

MiB = 1024 * 1024
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def lying_zip(base: bytes, name: str, real_size: int, declared_size: int) -> bytes:
    """``base`` plus a member ``name`` of ``real_size`` zero bytes whose local header and central
    directory both declare ``declared_size`` (the CRC stays the real one)."""
    buffer = io.BytesIO(base)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w") as member:  # streamed: the test never holds the real size either
            for _ in range(real_size // MiB):
                member.write(bytes(MiB))
        info = archive.getinfo(name)
    data = bytearray(buffer.getvalue())
    assert data[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, info.header_offset + 22, declared_size)  # local header: uncompressed size
    central = data.rfind(b"PK\x01\x02")
    while struct.unpack_from("<I", data, central + 42)[0] != info.header_offset:  # this member's entry
        central = data.rfind(b"PK\x01\x02", 0, central)
    struct.pack_into("<I", data, central + 24, declared_size)  # central directory: uncompressed size
    return bytes(data)


def docx_without_body() -> bytes:
    """A real DOCX less its word/document.xml: the part python-docx inflates first."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx(["Hello"]))) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename != "word/document.xml":
                target.writestr(info, source.read(info))
    return out.getvalue()


def extract(data: bytes, **params) -> dict:
    context = StageContext(file_name="a.docx", size=len(data), open=lambda: io.BytesIO(data),
                           outputs={"detect": {"mime_type": DOCX}})  # fmt: skip
    return REGISTRY["extract_text"].run(context, {**REGISTRY["extract_text"].defaults(), **params})


def test_it_counts_what_really_inflates_not_what_the_headers_declare():
    bomb = lying_zip(docx_without_body(), "word/document.xml", real_size=64 * MiB, declared_size=4096)
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:  # the lie, as zipfile reads it
        assert sum(info.file_size for info in archive.infolist()) < MiB
    tracemalloc.start()
    try:
        with pytest.raises(StageError) as error:
            extract(bomb, max_decompressed_mb=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.value.code == "too_large_decompressed"
    assert peak < 4 * MiB  # chunks of 64 KiB; the member inflates to 64 MiB


def test_a_lie_within_the_limit_is_refused_as_invalid():
    data = lying_zip(docx(["Hello"]), "word/media/image1.bin", real_size=2 * MiB, declared_size=4096)
    with pytest.raises(StageError) as error:
        extract(data, max_decompressed_mb=16)
    assert error.value.code == "invalid_document" and "declares 4096 bytes" in error.value.message


def test_a_normal_docx_still_extracts():
    data = docx(["Hello", "World"], table=[["Name", "Qty"], ["Bolt", "4"]])
    assert extract(data, max_decompressed_mb=1)["text"] == "Hello\nWorld\nName\tQty\nBolt\t4"


def test_the_limit_counts_every_member_together():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"part{index}.xml", bytes(400 * 1024))
    with pytest.raises(StageError) as error:
        checked_zip(buffer.getvalue(), limit_bytes=MiB, kind="DOCX")
    assert error.value.code == "too_large_decompressed" and "DOCX" in error.value.message
    assert checked_zip(buffer.getvalue(), limit_bytes=2 * MiB).read() == buffer.getvalue()


def test_a_truncated_archive_is_an_invalid_document():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.xml", "<a/>" * 1000)
    with pytest.raises(StageError) as error:
        checked_zip(buffer.getvalue()[:-30], limit_bytes=MiB)
    assert error.value.code == "invalid_document" and "not a valid zip archive" in error.value.message


def test_a_corrupt_deflate_stream_is_an_invalid_document():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.xml", "<a/>" * 1000)
    data = bytearray(buffer.getvalue())
    offset = 30 + len("a.xml")  # the first member's compressed data
    data[offset : offset + 8] = b"\xff" * 8
    with pytest.raises(StageError) as error:
        checked_zip(bytes(data), limit_bytes=MiB)
    assert error.value.code == "invalid_document"


def test_other_compression_methods_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("a.xml", "<a/>")
    with pytest.raises(StageError) as error:
        checked_zip(buffer.getvalue(), limit_bytes=MiB)
    assert error.value.code == "invalid_document" and "only stored and deflated" in error.value.message
