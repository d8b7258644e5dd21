"""ZipDirectory.open: a member read as it inflates, with the checks of a whole read."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from shared.zipdir import MemberError, ZipDirectory


def _archive(path: Path, data: bytes, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("big.json", data)
    return path


def _corrupt_crc(path: Path) -> None:
    """The CRC-32 in the central directory and the local header, both off by one bit."""
    raw = bytearray(path.read_bytes())
    for signature, at in ((b"PK\x01\x02", 16), (b"PK\x03\x04", 14)):
        start = raw.index(signature)
        raw[start + at] ^= 1
    path.write_bytes(raw)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_a_member_read_in_small_pieces_is_the_member(tmp_path: Path, method: int) -> None:
    # Several megabytes that compress a little: more than one piece in and out.
    data = b"".join(os.urandom(64).hex().encode() + b"\n" for _ in range(60_000))
    path = _archive(tmp_path / "a.zip", data, method)
    archive = ZipDirectory(path)
    with archive.open(0) as stream:
        got = bytearray()
        while piece := stream.read(4093):
            got += piece
    assert bytes(got) == data
    assert bytes(archive.read(0)) == data
    archive.close()


def test_a_bad_crc_is_an_error_when_the_end_is_read(tmp_path: Path) -> None:
    data = b'{"messages": []}' * 200_000
    path = _archive(tmp_path / "a.zip", data)
    _corrupt_crc(path)
    archive = ZipDirectory(path)
    stream = archive.open(0)
    first = stream.read(1000)
    assert first == data[:1000]  # the start is read before the end is checked
    with pytest.raises(MemberError, match="CRC"):
        stream.read()
    archive.close()


def test_a_member_larger_than_declared_is_an_error(tmp_path: Path) -> None:
    data = b"x" * 3_000_000
    path = _archive(tmp_path / "a.zip", data)
    raw = bytearray(path.read_bytes())
    # The central directory's uncompressed size (offset 24) says 1,000,000.
    start = raw.index(b"PK\x01\x02")
    raw[start + 24 : start + 28] = (1_000_000).to_bytes(4, "little")
    path.write_bytes(raw)
    archive = ZipDirectory(path)
    with pytest.raises(MemberError, match="larger than the archive's directory says"):
        archive.open(0).read()
    archive.close()
