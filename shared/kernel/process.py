"""What a service's parts are given of the process they run in: the contract the runtime
(shared/kernel/runtime.py) fulfils, so that what it wires (the consumers, the usage counters, the
HTTP app's access checks) depends on this and never imports the runtime back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from shared.kernel.idempotency import ProcessedLedger
from shared.kernel.mongo import Database
from shared.kernel.settings import ServiceSettings
from shared.kernel.shutdown import StopHook


class DeadLetterSink(Protocol):
    """Where a consumer's given-up records go (shared.kernel.consumers.DeadLetters)."""

    async def send(self, record: Any, purpose: str, reason: str, detail: str) -> None: ...


class Drains(Protocol):
    """Work a consumer holds that the stop lets finish (shared.kernel.consumers.Pipeline)."""

    async def drain(self) -> None: ...


class ServiceProcess(Protocol):
    """One service process, as the parts it hosts use it (shared.kernel.runtime.Runtime)."""

    @property
    def settings(self) -> ServiceSettings: ...
    @property
    def service(self) -> str: ...
    @property
    def db(self) -> Database: ...
    @property
    def broker(self) -> KafkaBroker: ...
    @property
    def dead_letters(self) -> DeadLetterSink: ...
    @property
    def pipelines(self) -> list[Drains]: ...

    def ledger(self, purpose: str) -> ProcessedLedger: ...
    def on_startup(self, hook: Callable[[ServiceProcess], Awaitable[None]]) -> None: ...
    def on_shutdown(
        self, name: str, hook: StopHook, *, minimum: float = 0.1, cap: float = 1.0
    ) -> None: ...
    def background(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None: ...
