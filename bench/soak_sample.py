"""What the soak reads every 10 s, into a `bench.soak_judge.Sample`.

- Each process's RSS (`VmRSS` of /proc/<pid>/status), CPU time so far (/proc/<pid>/stat)
  and open descriptors (/proc/<pid>/fd),
  and its TCP connections among them by peer (`to mongo`, `from gateway`: /proc/net/tcp),
  to say where descriptors that grew went.
- Each consumer group's lag from the broker itself: its committed offsets
  (`list_consumer_group_offsets`, given every partition of the run's topics: tansu answers
  it only with `partitions=`) against the partitions' ends. So the lag is read while the
  group's service is down too; it is what the group has committed, not yet what it holds.
- MongoDB's documents and bytes per collection (`collStats`), every `COLLECTIONS_EVERY`th
  sample only: SecantusDB answers it by reading every document and index entry under its
  global lock (about a second per 50 MB held), which every 10 s took 18% of the embedded
  server's time in a soak — the measurement slowing what it measures. And, every sample,
  the deliveries pending, active or delayed. Deliveries seen `failed` are kept (their endpoint
  and event) for the loss accounting: retention removes them before the end.
- `hookhub_event_loop_lag_seconds` from each service's `/metrics`.

A figure that cannot be read (the process, the broker or MongoDB is down) is missing from
the sample; nothing here raises for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from bench.soak_judge import Coll, Proc, Sample

LOOP_LAG = "hookhub_event_loop_lag_seconds"
PENDING = ("pending", "active", "delayed")
COLLECTIONS_EVERY = 3  # samples: collection statistics every 30 s
TIMEOUT = 5.0  # s for any one figure


def tcp_sockets() -> dict[str, tuple[int, int]]:
    """Every TCP socket of the machine, by inode: its local and remote ports."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = (int(a.rpartition(":")[2], 16) for a in fields[1:3])
                sockets[fields[9]] = (local, remote)
    return sockets


def _peer(local: int, remote: int, ports: Mapping[int, str]) -> str:
    """`to kafka`, `from <a client of> gateway`, or `other`."""
    if remote in ports:
        return f"to {ports[remote]}"
    if local in ports:
        return f"from {ports[local]}"
    return "other"


def process_figures(
    pid: int, sockets: Mapping[str, tuple[int, int]], ports: Mapping[int, str]
) -> Proc | None:
    """`sockets`: `tcp_sockets()`, read once for every process of a sample; `ports`: the
    stack's listening ports by name, to say where its connections go."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                links.append(fd.readlink().name)
    except OSError:
        return None
    inodes = [link[8:-1] for link in links if link.startswith("socket:[")]
    peers = Counter(_peer(*sockets[inode], ports) for inode in inodes if inode in sockets)
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
            return Proc(pid, rss, len(links), dict(peers), _cpu_seconds(stat))
    return None  # a zombie has no VmRSS


def _cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line (fields 14 and 15, after the command's
    parenthesis, which may hold spaces)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """`pids()` gives each process to read (None: not running now); `services()` each
    hookhub service's URL and `ports()` each listening port's name, as they are at the
    time of the sample (a restarted service has a new pid and port)."""

    def __init__(
        self,
        bootstrap: str,
        namespace: str,
        mongo_uri: str,
        database: str,
        pids: Callable[[], Mapping[str, int | None]],
        services: Callable[[], Mapping[str, str]],
        ports: Callable[[], Mapping[int, str]],
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = namespace + "."
        self.pids = pids
        self.services = services
        self.ports = ports
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(
            mongo_uri,
            serverSelectionTimeoutMS=2000,
            connectTimeoutMS=2000,
            socketTimeoutMS=30_000,
        )
        self.db = self.mongo[database]
        self.failed: set[tuple[str, str]] = set()  # (endpoint, event) of failed deliveries
        self._kafka: tuple[Any, Any] | None = None
        self._taken = 0  # samples so far
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        await self._drop_kafka()
        if self._http is not None:
            await self._http.close()
        self.mongo.close()

    async def sample(self, t: float) -> Sample:
        every = self._taken % COLLECTIONS_EVERY == 0
        self._taken += 1
        lag, mongo, loop_lag = await asyncio.gather(
            self._guarded(self.lag()),
            asyncio.to_thread(self._mongo, every),
            self.loop_lags(),
        )
        sockets, ports = tcp_sockets(), self.ports()
        processes = {
            name: None if pid is None else process_figures(pid, sockets, ports)
            for name, pid in self.pids().items()
        }
        collections, pending = mongo if mongo is not None else (None, None)
        return Sample(t, processes, lag, collections, pending, loop_lag)

    async def _guarded(self, figure: Any) -> Any:
        try:
            return await asyncio.wait_for(figure, TIMEOUT)
        except Exception:  # the broker is down: a new client next time
            await self._drop_kafka()
            return None

    # -- Kafka ---------------------------------------------------------------------------

    async def _clients(self) -> tuple[Any, Any]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self._kafka is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            self._kafka = (admin, consumer)
            await admin.start()
            await consumer.start()
        return self._kafka

    async def _drop_kafka(self) -> None:
        if self._kafka is None:
            return
        (admin, consumer), self._kafka = self._kafka, None
        with contextlib.suppress(Exception):
            await admin.close()
        with contextlib.suppress(Exception):
            await consumer.stop()

    async def lag(self) -> dict[str, int]:
        from shared.kernel.kafka import committed_offsets, partitions_of

        admin, consumer = await self._clients()
        topics = [topic for topic in await consumer.topics() if topic.startswith(self.prefix)]
        partitions = [tp for topic in topics for tp in await partitions_of(consumer, topic)]
        ends = await consumer.end_offsets(partitions)
        groups = await committed_offsets(admin, partitions, self.prefix)
        return {
            group: sum(max(ends[tp] - offset, 0) for tp, offset in committed.items() if tp in ends)
            for group, committed in sorted(groups.items())
        }

    # -- MongoDB (in a thread: PyMongo blocks) ---------------------------------------------

    def _mongo(self, with_collections: bool) -> tuple[dict[str, Coll] | None, int] | None:
        try:
            collections: dict[str, Coll] | None = None
            if with_collections:
                collections = {}
                for name in sorted(self.db.list_collection_names()):
                    stats = self.db.command("collStats", name)
                    collections[name] = Coll(int(stats["count"]), int(stats["size"]))
            deliveries = self.db["deliveries"]
            pending = deliveries.count_documents({"status": {"$in": list(PENDING)}})
            failed = deliveries.find({"status": "failed"}, {"endpoint_id": 1, "event_id": 1})
            self.failed |= {(doc["endpoint_id"], doc["event_id"]) for doc in failed}
        except Exception:  # MongoDB is down
            return None
        return collections, pending

    async def find(
        self, collection: str, query: dict[str, Any], fields: list[str]
    ) -> list[dict[str, Any]] | str:
        """Up to 20 documents' `fields` (the error's name if MongoDB cannot answer)."""

        def read() -> list[dict[str, Any]]:
            projection = dict.fromkeys(fields, 1)
            return self.db[collection].find(query, projection).limit(20).to_list()

        try:
            return await asyncio.to_thread(read)
        except Exception as exc:
            return type(exc).__name__

    # -- the services' metrics -------------------------------------------------------------

    async def loop_lags(self) -> dict[str, float | None]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        services = dict(self.services())
        found = await asyncio.gather(*(self._loop_lag(url) for url in services.values()))
        return dict(zip(services, found, strict=True))

    async def _loop_lag(self, url: str) -> float | None:
        assert self._http is not None
        try:
            async with self._http.get(url + "/metrics") as answer:
                text = await answer.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        for family in text_string_to_metric_families(text):
            if family.name == LOOP_LAG and family.samples:
                return float(family.samples[0].value)
        return None
