"""ZipDirectory.pieces: a member read as it inflates, a megabyte at a time, with the checks
of a whole read (the CRC-32's after the last piece)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from shared.kernel.zipdir import MemberError, ZipDirectory


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
def test_a_member_read_in_pieces_is_the_member(tmp_path: Path, method: int) -> None:
    # Several megabytes that compress a little: more than one piece in and out.
    data = b"".join(os.urandom(64).hex().encode() + b"\n" for _ in range(60_000))
    path = _archive(tmp_path / "a.zip", data, method)
    archive = ZipDirectory(path)
    pieces = list(archive.pieces(0))
    assert len(pieces) > 1 and all(0 < len(piece) <= 2**20 for piece in pieces)
    assert b"".join(pieces) == data
    assert bytes(archive.read(0)) == data
    archive.close()


def test_a_bad_crc_is_an_error_after_the_last_piece(tmp_path: Path) -> None:
    """Every piece is yielded first (the start is read before the end is checked)."""
    data = b'{"messages": []}' * 200_000
    path = _archive(tmp_path / "a.zip", data)
    _corrupt_crc(path)
    archive = ZipDirectory(path)
    got = bytearray()
    with pytest.raises(MemberError, match="CRC"):
        for piece in archive.pieces(0):
            got += piece
    assert bytes(got) == data
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
    got = bytearray()
    with pytest.raises(MemberError, match="larger than the archive's directory says"):
        for piece in archive.pieces(0):
            got += piece
    assert len(got) <= 1_000_000 and data.startswith(got)  # never past the declared size
    archive.close()
