"""A ZIP archive's central directory kept compact, and its members read from it: what an
export import needs of a ZIP with hundreds of thousands of members, without `zipfile`'s
`ZipInfo` per member (about 0.75 KB each, for as long as the archive is open).

Per member this keeps 40 bytes in `array`s (where its name ends in one bytes blob of names,
its local header's offset, its sizes, CRC-32, compression method and flags), its name's UTF-8
bytes in the blob, and 8 to 16 bytes of a name → member table (open addressing, member numbers
in an `array('i')`, built while the directory is read; it also finds a name that appears
twice): about 60 bytes and the name, where zipfile's `ZipInfo` takes about 550.

What is read: the end of central directory record (after an archive comment too) and its
ZIP64 form, ZIP64 sizes and offsets in a member's extra field, names flagged UTF-8 (bit 11)
and names without the flag (UTF-8 when they decode as UTF-8, as Slack and many zip tools
write them, else cp437), data descriptors (the directory's sizes and CRC are the ones used),
and data prepended to the archive (a self-extractor's stub), as `zipfile` reads them.
Members are stored or deflated (zlib); another method, an encrypted member, a bad CRC or
data that inflates past its declared size is a `MemberError` when the member is read.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["MemberError", "NotAZip", "TooManyMembers", "ZipDirectory"]

_END = struct.Struct("<4s4H2LH")  # end of central directory record, 22 bytes
_END_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # ZIP64 end of central directory locator, 20 bytes
_LOCATOR_SIG = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")  # ZIP64 end of central directory record, 56 bytes
_END64_SIG = b"PK\x06\x06"
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header, 46 bytes
_ENTRY_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header, 30 bytes
_LOCAL_SIG = b"PK\x03\x04"
_EXTRA = struct.Struct("<HH")
_ZIP64_EXTRA = 0x0001
_MAX_COMMENT = 0xFFFF
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
STORED, DEFLATED = 0, 8
_CHUNK = 1 << 20
_EMPTY = -1


class NotAZip(Exception):
    """The file is not a ZIP archive this reader can open, or its directory is cut or
    corrupt; the message says which."""


class TooManyMembers(Exception):
    """More members than allowed: `count` as the end record declares it, or (`exact` False)
    more than `count`, read from a directory holding more than its end record says."""

    def __init__(self, count: int, *, exact: bool = True) -> None:
        super().__init__(f"the archive has {'' if exact else 'more than '}{count} members")
        self.count = count
        self.exact = exact


class MemberError(Exception):
    """One member cannot be read (the others can)."""


class ZipDirectory:
    """An archive opened for reading members by number (0 ..`len() - 1`, directory order) or
    by name. `max_members`: refused (`TooManyMembers`) from the end record's count, before
    the directory is read, and from the directory itself."""

    def __init__(self, path: Path, *, max_members: int | None = None) -> None:
        self._file = path.open("rb")
        self._lock = threading.Lock()
        try:
            self._read(max_members)
        except BaseException:
            self._file.close()
            raise

    # -- members -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._header_offset)

    def name(self, member: int) -> str:
        """The name as it was meant (see the module's docstring), whole (not cut at a NUL)."""
        return self._name_bytes(member).decode("utf-8")

    def file_size(self, member: int) -> int:
        return self._file_size[member]

    def compress_size(self, member: int) -> int:
        return self._compress_size[member]

    def is_dir(self, member: int) -> bool:
        return self._name_bytes(member).endswith(b"/")

    def find(self, name: str) -> int | None:
        """The member of that name, or None."""
        return self._find(name.encode("utf-8"))

    @property
    def duplicate(self) -> int | None:
        """The first member whose name an earlier member has too, or None."""
        return self._duplicate

    def read(self, member: int, limit: int | None = None) -> bytearray:
        """The member's bytes, checked against its CRC-32 and its declared size. `limit`:
        a member declared larger is refused before anything is read. Raises `MemberError`."""
        size = self._file_size[member]
        if limit is not None and size > limit:
            raise MemberError(f"the member is {size} bytes, over the limit of {limit}")
        out = bytearray()
        for piece in self.pieces(member):
            out += piece
        return out

    def pieces(self, member: int) -> Iterator[bytes]:
        """The member's bytes in pieces of at most a megabyte, each yielded as it is
        inflated: the declared size is enforced as they come, the CRC-32 checked after the
        last (a `MemberError` then, so a reader acts on what it read only at the end, or
        accepts that a corrupt member's start was read)."""
        size = self._file_size[member]
        flags = self._flags[member]
        method = self._method[member]
        if flags & _ENCRYPTED_FLAG:
            raise MemberError("the member is encrypted (no password is known)")
        if method not in (STORED, DEFLATED):
            raise MemberError(
                f"the member's compression method ({method}) is not supported: only stored "
                "(0) and deflated (8) are"
            )
        name = bytes(self._name_bytes(member))
        remaining = self._compress_size[member]
        at = self._data_start(member, name)
        inflate = zlib.decompressobj(-15) if method == DEFLATED else None
        produced = 0
        crc = 0
        try:
            while remaining or (inflate is not None and inflate.unconsumed_tail):
                if inflate is not None and inflate.unconsumed_tail:
                    chunk = inflate.unconsumed_tail
                else:
                    chunk = self._pread(min(remaining, _CHUNK), at)
                    if not chunk:
                        raise MemberError("the archive ends inside the member")
                    at += len(chunk)
                    remaining -= len(chunk)
                # At most a megabyte out per step; one byte more than declared is allowed
                # out, to see that there is more.
                piece = (
                    chunk
                    if inflate is None
                    else inflate.decompress(chunk, min(_CHUNK, size + 1 - produced))
                )
                if produced + len(piece) > size:
                    raise MemberError(
                        f"the member is larger than the archive's directory says ({size} bytes)"
                    )
                crc = zlib.crc32(piece, crc)
                produced += len(piece)
                if piece:
                    yield piece
        except zlib.error as exc:
            raise MemberError(f"the member's compressed data is corrupt ({exc})") from exc
        if inflate is not None and not inflate.eof:
            raise MemberError("the member's compressed data is cut short")
        if produced != size:
            raise MemberError(
                f"the member is {produced} bytes, the archive's directory says {size}"
            )
        if crc != self._crc[member]:
            raise MemberError(f"Bad CRC-32 for the member {name.decode('utf-8')!r}")

    def close(self) -> None:
        self._file.close()

    # -- reading the directory -----------------------------------------------------------------

    def _read(self, max_members: int | None) -> None:
        count, cd_size, cd_offset, concat = self._end_record()
        if max_members is not None and count > max_members:
            raise TooManyMembers(count)
        self._names = bytearray()
        self._name_end = array("Q")
        self._header_offset = array("Q")
        self._compress_size = array("Q")
        self._file_size = array("Q")
        self._crc = array("I")
        self._method = array("H")
        self._flags = array("H")
        # Each entry takes at least 46 bytes: a forged count does not size the table.
        self._slots = array("i", [_EMPTY]) * _table_size(min(count, cd_size // _ENTRY.size))
        self._duplicate: int | None = None
        entries = _Chunks(self._file, cd_offset + concat, cd_size)
        while entries.left:
            if max_members is not None and len(self) >= max_members:
                raise TooManyMembers(len(self), exact=False)
            self._entry(entries, concat)

    def _end_record(self) -> tuple[int, int, int, int]:
        """(members, directory size, directory offset, bytes before the archive)."""
        file = self._file
        size = file.seek(0, os.SEEK_END)
        tail_size = min(size, _END.size + _MAX_COMMENT)
        file.seek(size - tail_size)
        tail = file.read(tail_size)
        at = _end_at(tail)
        if at < 0:
            raise NotAZip("no end of central directory record")
        _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _END.unpack_from(tail, at)
        end_at = size - tail_size + at
        header = end_at
        locator_at = end_at - _LOCATOR.size
        locator = _read_at(file, locator_at, _LOCATOR.size) if locator_at >= 0 else b""
        if locator[:4] == _LOCATOR_SIG:
            _, _, _, disks = _LOCATOR.unpack(locator)
            if disks > 1:
                raise NotAZip("archives that span several disks are not supported")
            record_at = locator_at - _END64.size
            record = _read_at(file, record_at, _END64.size) if record_at >= 0 else b""
            if len(record) != _END64.size or record[:4] != _END64_SIG:
                raise NotAZip("the ZIP64 end of central directory record is missing or corrupt")
            fields = _END64.unpack(record)
            disk, cd_disk, count, cd_size, cd_offset = fields[4], fields[5], *fields[7:10]
            header = record_at
        if disk != 0 or cd_disk != 0:
            raise NotAZip("archives that span several disks are not supported")
        concat = header - cd_size - cd_offset
        if concat < 0 or cd_offset + concat + cd_size > size:
            raise NotAZip("the central directory's size or offset is out of the file")
        return count, cd_size, cd_offset, concat

    def _entry(self, entries: _Chunks, concat: int) -> None:
        member = len(self._name_end)
        fields = _ENTRY.unpack(entries.take(_ENTRY.size))
        if fields[0] != _ENTRY_SIG:
            raise NotAZip(f"the central directory is corrupt at member {member}")
        _, _, _, _, _, flags, method, _, _, crc, compress_size, file_size = fields[:12]
        name_size, extra_size, comment_size = fields[12:15]
        header_offset = fields[18]
        rest = entries.take(name_size + extra_size + comment_size)
        if 0xFFFFFFFF in (file_size, compress_size, header_offset):
            file_size, compress_size, header_offset = _zip64_extra(
                rest[name_size : name_size + extra_size],
                file_size,
                compress_size,
                header_offset,
                member,
            )
        name = _meant_name(rest[:name_size], flags, member)
        self._names += name
        self._name_end.append(len(self._names))
        self._header_offset.append(header_offset + concat)
        self._compress_size.append(compress_size)
        self._file_size.append(file_size)
        self._crc.append(crc)
        self._method.append(method)
        self._flags.append(flags)
        self._insert(name, member)

    # -- the name table ------------------------------------------------------------------------

    def _insert(self, name: bytes, member: int) -> None:
        if 2 * (member + 1) > len(self._slots):  # more members than the end record said
            self._rehash(member)
        slot = self._probe(name)
        if self._slots[slot] == _EMPTY:
            self._slots[slot] = member
        elif self._duplicate is None:
            self._duplicate = member

    def _find(self, name: bytes) -> int | None:
        found = self._slots[self._probe(name)]
        return None if found == _EMPTY else found

    def _probe(self, name: bytes) -> int:
        """The slot holding `name`, or the empty slot where it would go."""
        mask = len(self._slots) - 1
        slot = hash(name) & mask
        while True:
            member = self._slots[slot]
            if member == _EMPTY or self._name_bytes(member) == name:
                return slot
            slot = (slot + 1) & mask

    def _rehash(self, members: int) -> None:
        self._slots = array("i", [_EMPTY]) * _table_size(2 * members + 1)
        for member in range(members):
            slot = self._probe(bytes(self._name_bytes(member)))
            if self._slots[slot] == _EMPTY:
                self._slots[slot] = member

    def _name_bytes(self, member: int) -> bytearray:
        return self._names[self._name_end[member - 1] if member else 0 : self._name_end[member]]

    # -- reading a member ----------------------------------------------------------------------

    def _data_start(self, member: int, name: bytes) -> int:
        offset = self._header_offset[member]
        header = self._pread(_LOCAL.size, offset)
        if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIG:
            raise MemberError("the member's local header is missing or corrupt")
        fields = _LOCAL.unpack(header)
        name_size, extra_size = fields[10], fields[11]
        local_name = self._pread(name_size, offset + _LOCAL.size)
        if _meant_name(local_name, fields[3], member, strict=False) != name:
            raise MemberError("the member's local header names another file")
        return int(offset + _LOCAL.size + name_size + extra_size)

    def _pread(self, size: int, offset: int) -> bytes:
        with self._lock:
            return _read_at(self._file, offset, size)


class _Chunks:
    """The central directory read a megabyte at a time, taken field by field."""

    def __init__(self, file: BinaryIO, offset: int, size: int) -> None:
        self._file = file
        self._next = offset
        self.left = size
        self._buffer = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        if size > self.left:
            raise NotAZip("the central directory is cut short")
        if self._at + size > len(self._buffer):
            wanted = min(self.left, max(_CHUNK, size)) - (len(self._buffer) - self._at)
            more = _read_at(self._file, self._next, wanted)
            if len(more) != wanted:
                raise NotAZip("the central directory is cut short")
            self._next += wanted
            self._buffer = self._buffer[self._at :] + more
            self._at = 0
        found = self._buffer[self._at : self._at + size]
        self._at += size
        self.left -= size
        return found


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    file.seek(offset)
    return file.read(size)


def _end_at(tail: bytes) -> int:
    """Where the end record is in the file's last bytes: the last signature whose comment
    length reaches the file's end exactly (an archive's comment may hold the signature
    too), else the last one with room for a record (bytes appended after the archive)."""
    fallback = -1
    at = tail.rfind(_END_SIG)
    while at >= 0:
        if len(tail) - at >= _END.size:
            (comment,) = struct.unpack_from("<H", tail, at + 20)
            if at + _END.size + comment == len(tail):
                return at
            fallback = max(fallback, at)
        at = tail.rfind(_END_SIG, 0, at)
    return fallback


def _zip64_extra(
    extra: bytes, file_size: int, compress_size: int, header_offset: int, member: int
) -> tuple[int, int, int]:
    """The sizes and offset a ZIP64 extra field gives for those the header marks 0xFFFFFFFF,
    in the format's order (uncompressed size, compressed size, offset)."""
    at = 0
    while at + _EXTRA.size <= len(extra):
        kind, size = _EXTRA.unpack_from(extra, at)
        body = extra[at + _EXTRA.size : at + _EXTRA.size + size]
        if len(body) != size:
            raise NotAZip(f"member {member}'s extra field is corrupt")
        if kind == _ZIP64_EXTRA:
            values = list(struct.unpack(f"<{size // 8}Q", body[: size // 8 * 8]))
            found = []
            for value in (file_size, compress_size, header_offset):
                if value == 0xFFFFFFFF:
                    if not values:
                        raise NotAZip(f"member {member}'s ZIP64 extra field is too short")
                    value = values.pop(0)
                found.append(value)
            return found[0], found[1], found[2]
        at += _EXTRA.size + size
    return file_size, compress_size, header_offset


def _meant_name(raw: bytes, flags: int, member: int, *, strict: bool = True) -> bytes:
    """The name's UTF-8 bytes: flagged UTF-8, it must be UTF-8; unflagged, it is UTF-8 when
    it decodes as UTF-8 (Slack's exports), else cp437 (what the flag's absence says)."""
    if raw.isascii():
        return raw
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if flags & _UTF8_FLAG:
            if not strict:
                return raw
            raise NameNotUtf8(member) from exc
        return raw.decode("cp437").encode("utf-8")
    return raw


class NameNotUtf8(NotAZip):
    def __init__(self, member: int) -> None:
        super().__init__(f"member {member}'s name is flagged UTF-8 but is not UTF-8")


def _table_size(members: int) -> int:
    size = 8
    while size < 2 * members:
        size *= 2
    return size
