"""What opening an export costs by its number of files (`HOOKHUB_IMPORT_MAX_MEMBERS`): for
each size, a synthetic export of that many members (`channels.json`, `users.json` and
day files of `[]` over 1,000 channel folders, stored, ZIP64 past 65,535 members) is opened
in a fresh process by `SlackExport.open` (the checks, the index files, the day files by
conversation) and, for comparison, by `zipfile.ZipFile` (what the reader used before its
own compact directory). Reported: the open's wall time and how much the process's peak RSS
grew (ru_maxrss), and that per member.

    python -m bench.zip_directory --members 150000 1000000
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from array import array
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import chain
from pathlib import Path

CHANNELS = 1_000
DAY = b"[]"
_PROBE = """
import json, resource, sys, time, zipfile
from pathlib import Path
from shared.providers.slack.export import ExportLimits, SlackExport
path, reader = Path(sys.argv[1]), sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if reader == "ours":
    opened = SlackExport.open(path, ExportLimits(max_members=10**9))
    found = sum(len(opened.day_files(c)) for c in opened.conversations)
else:
    opened = zipfile.ZipFile(path)
    found = len(opened.infolist())
seconds = time.perf_counter() - started
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "grown_kib": grown, "found": found}))
"""


def names(members: int) -> Iterator[str]:
    """`members - 2` day file names, channel by channel (the index files are the other two)."""
    per_channel = -(-(members - 2) // CHANNELS)
    left = members - 2
    for channel in range(CHANNELS):
        for day in range(min(per_channel, left)):
            yield f"channel-{channel:04d}/{date(2000, 1, 1) + timedelta(days=day)}.json"
        left -= min(per_channel, left)


def write(path: Path, members: int) -> None:
    channels = json.dumps(
        [{"id": f"C{n:010d}", "name": f"channel-{n:04d}"} for n in range(CHANNELS)]
    ).encode()
    files = [("channels.json", channels), ("users.json", b"[]")]
    offsets = array("Q")
    with path.open("wb") as out:

        def member(name: str, data: bytes) -> None:
            offsets.append(out.tell())
            raw = name.encode()
            out.write(
                struct.pack(
                    "<4s2B4HL2L2H",
                    b"PK\x03\x04",
                    20,
                    0,
                    0,
                    0,
                    0,
                    0,
                    zlib.crc32(data),
                    len(data),
                    len(data),
                    len(raw),
                    0,
                )
            )
            out.write(raw + data)

        for name, data in files:
            member(name, data)
        for name in names(members):
            member(name, DAY)
        start = out.tell()
        every = chain(files, ((name, DAY) for name in names(members)))
        for n, (name, data) in enumerate(every):
            raw = name.encode()
            out.write(
                struct.pack(
                    "<4s4B4HL2L5H2L",
                    b"PK\x01\x02",
                    20,
                    3,
                    20,
                    0,
                    0,
                    0,
                    0,
                    0,
                    zlib.crc32(data),
                    len(data),
                    len(data),
                    len(raw),
                    0,
                    0,
                    0,
                    0,
                    0o644 << 16,
                    offsets[n],
                )
            )
            out.write(raw)
        end = out.tell()
        if members > 0xFFFF:
            out.write(
                struct.pack(
                    "<4sQ2H2L4Q",
                    b"PK\x06\x06",
                    44,
                    45,
                    45,
                    0,
                    0,
                    members,
                    members,
                    end - start,
                    start,
                )
            )
            out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1))
        count = min(members, 0xFFFF)
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, end - start, start, 0))


def probe(path: Path, reader: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), reader],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    found: dict[str, float] = json.loads(done.stdout)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zip_directory", description=__doc__)
    parser.add_argument("--members", type=int, nargs="+", default=[150_000, 1_000_000])
    parser.add_argument("--zipfile", action="store_true", help="also open with zipfile")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        for members in args.members:
            path = Path(scratch) / f"many-{members}.zip"
            write(path, members)
            for reader in ("ours", "zipfile") if args.zipfile else ("ours",):
                found = probe(path, reader)
                grown = found["grown_kib"] * 1024
                print(
                    f"{members:>9,} members, {path.stat().st_size / 2**20:6.1f} MB zipped, "
                    f"{reader:>7}: open {found['seconds']:5.2f} s, peak RSS +{grown / 2**20:6.1f}"
                    f" MB ({grown / members:4.0f} B a member)"
                )
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
