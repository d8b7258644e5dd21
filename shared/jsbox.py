"""User JavaScript in a V8 isolate with hard limits: the one sandbox of sync's and the
gateway's templates (SPEC §16) and delivery's transformations (§17).

A script defines a function (`handler`); a run calls it with one JSON value and takes its
return value back as JSON. What a run may do:

- **No I/O.** Bare V8 (mini-racer): no `fetch`, `require`, `process`, `XMLHttpRequest`,
  module loader or file system. Whatever could run later, outside a run's limits, is taken
  away before the script runs: `setTimeout` (mini-racer's, built on `Atomics.waitAsync`),
  `Atomics`, `FinalizationRegistry`, `WeakRef`, `WebAssembly`; and so are `ArrayBuffer`,
  `SharedArrayBuffer`, `DataView` and the typed arrays, whose memory V8 keeps outside the
  heap its limit counts. `Date`, `Math.random`, `JSON`, `Intl`, `RegExp` are there.
- **Limits** (`Limits`), enforced by V8 through mini-racer, not by watching from Python:
  the time (wall clock, 50 ms: mini-racer terminates the isolate's execution when its
  task is cancelled) covers the call and the promise jobs it leaves behind, and the heap
  (32 MB: V8's hard limit on the isolate). The result is JSON of at most 64 KB.
- **One isolate per (scope, script)**: a script compiled once, kept (least recently used
  first out), called many times, one run at a time; two scopes (two workspaces) never
  share an isolate, so no script sees another's globals. An isolate whose run timed out
  or ran out of memory is thrown away (it is never trusted again) and the script
  compiled anew at its next run.
- **Off the caller's loop.** The isolates belong to one thread of the sandbox's own (an
  asyncio loop) and V8 runs each on a thread of its own: a caller awaits a run while its
  event loop goes on. At most `concurrency` runs at once.
- **Suspension.** A script that failed `failures` times in a row (an error, a time-out,
  memory, a bad result) is suspended for `suspend_seconds`: its runs fail at once with
  kind `suspended`, so a looping script cannot cost 50 ms at every event of a batch. The
  next run after that is a trial: a success clears the count, a failure suspends again.

Errors are `ScriptError` with a `kind` (syntax, error, timeout, memory, result,
suspended), a message and, where V8 says where, the script's line and column.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    MiniRacer,
)

__all__ = ["Limits", "Sandbox", "ScriptError"]

T = TypeVar("T")
Kind = Literal["syntax", "error", "timeout", "memory", "result", "suspended"]

_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")
# What V8 puts first in the message of an exception thrown by one of our scripts (each is
# evaluated as its own `<anonymous>` script), and the caret line under the source line.
_WHERE = re.compile(r"^<anonymous>:(\d+): ?(.*)$")
_MESSAGE_CHARS = 300

# Run before any user code, in every isolate: takes away what could outlive a run or escape
# the heap limit, and installs the runner, with JSON's functions as they were (a script
# that changes `JSON` changes only what it does itself).
_PREPARE = """
(() => {
  const g = globalThis;
  for (const name of [
    "Atomics", "FinalizationRegistry", "WeakRef", "WebAssembly", "ArrayBuffer",
    "SharedArrayBuffer", "DataView", "Int8Array", "Uint8Array", "Uint8ClampedArray",
    "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "Float16Array",
    "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
  ]) {
    delete g[name];
  }
  g.setTimeout = undefined;
  g.clearTimeout = undefined;
  g.__timer_manager = undefined;
  const parse = JSON.parse, stringify = JSON.stringify, Pending = Promise;
  let entry;
  const runner = Object.freeze({
    bind(fn) {
      entry = fn;
      return typeof fn === "function";
    },
    run(input, limit) {
      const value = entry(parse(input));
      if (value instanceof Pending) return "!returned a Promise: the function cannot be async";
      let out;
      try {
        out = stringify(value);
      } catch (e) {
        return "!returned what is not JSON: " + String(e && e.message ? e.message : e);
      }
      if (out === undefined) return "!returned nothing (undefined)";
      if (out.length > limit) {
        return "!returned " + out.length + " characters of JSON, over " + limit;
      }
      return out;
    },
  });
  Object.defineProperty(g, "__jsbox", {value: runner, writable: false, configurable: false});
})();
"""


@dataclass(frozen=True)
class Limits:
    seconds: float = 0.05
    memory_bytes: int = 32 * 1024 * 1024
    # Characters of the result's JSON.
    result_chars: int = 64 * 1024


class ScriptError(Exception):
    """A script that did not give a result: `kind` says how, `line`/`column` (1-based)
    where in the script, when V8 says."""

    def __init__(
        self, kind: Kind, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"{self.message}{where}"


def located(kind: Kind, text: str) -> ScriptError:
    """A ScriptError from mini-racer's text of a V8 exception: `<anonymous>:LINE: message`,
    the source line, then a caret under the column."""
    lines = text.split("\n")
    found = _WHERE.match(lines[0])
    if found is None:
        return ScriptError(kind, lines[0][:_MESSAGE_CHARS] or "the script failed")
    line, message = int(found.group(1)), found.group(2)
    column = None
    if len(lines) > 2 and "^" in lines[2]:
        column = lines[2].index("^") + 1
    return ScriptError(kind, message[:_MESSAGE_CHARS] or "the script failed", line, column)


@dataclass
class _Compiled:
    """One script in its own isolate."""

    racer: MiniRacer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.racer.close()


@dataclass
class _Record:
    """A script's failures in a row, and until when (monotonic) it is suspended."""

    failures: int = 0
    until: float = 0.0


def script_key(scope: str, function: str, source: str) -> str:
    digest = hashlib.sha256(f"{function}\0{source}".encode()).hexdigest()
    return f"{scope}\0{digest}"


class Sandbox:
    """Runs scripts (module docstring). Thread-safe to call from any event loop."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        compiled: int = 64,
        concurrency: int = 2,
        failures: int = 5,
        suspend_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._size = compiled
        self._concurrency = concurrency
        self._failures = failures
        self._suspend_seconds = suspend_seconds
        self._clock = clock
        self._compiled: OrderedDict[str, _Compiled] = OrderedDict()
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Semaphore | None = None
        self._start = threading.Lock()

    # The caller's side -------------------------------------------------------------------

    async def check(self, source: str, function: str = "handler") -> None:
        """Compiles `source` in a fresh isolate (running its top level, within the limits)
        and checks that it defines `function`. Raises ScriptError."""
        await self._submit(self._check(source, function))

    async def run(
        self,
        source: str,
        data: Any,
        *,
        function: str = "handler",
        scope: str = "",
        keep: bool = True,
    ) -> Any:
        """`function(data)` of `source`, as JSON. `keep`: compile once and keep the isolate
        (and count failures towards suspension); otherwise a fresh isolate, closed after
        (an editor's test run). Raises ScriptError."""
        if not _NAME.match(function):
            raise ValueError(f"not a function name: {function!r}")
        text = orjson.dumps(data).decode()
        out = await self._submit(self._run(source, function, text, scope, keep))
        return orjson.loads(out)

    def suspended(self, source: str, *, function: str = "handler", scope: str = "") -> bool:
        record = self._records.get(script_key(scope, function, source))
        return record is not None and record.until > self._clock()

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close_all(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        self._loop = self._thread = None

    def _submit(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        loop = self._running()
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return asyncio.wrap_future(future)

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._start:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    self._slots = asyncio.Semaphore(self._concurrency)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.close()

                self._thread = threading.Thread(target=serve, name="jsbox", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    # The sandbox thread's side ------------------------------------------------------------

    async def _close_all(self) -> None:
        for compiled in self._compiled.values():
            compiled.close()
        self._compiled.clear()

    async def _check(self, source: str, function: str) -> None:
        assert self._slots is not None
        async with self._slots:
            compiled = await self._compile(source, function)
            compiled.close()

    async def _compile(self, source: str, function: str) -> _Compiled:
        """A new isolate with `source` evaluated and `function` bound as the entry."""
        racer = MiniRacer()
        compiled = _Compiled(racer)
        try:
            racer.set_hard_memory_limit(self.limits.memory_bytes)
            await racer.eval_cancelable(_PREPARE)
            await self._limited(compiled, source, "syntax")
            bound = await self._limited(
                compiled, f"__jsbox.bind(typeof {function} === 'function' ? {function} : 0)"
            )
            if bound is not True:
                raise ScriptError("error", f"the script defines no function {function}")
        except BaseException:
            compiled.close()
            raise
        return compiled

    async def _limited(self, compiled: _Compiled, code: str, kind: Kind = "error") -> Any:
        """`code` evaluated within the time limit; then a no-op within what is left of it,
        which runs only after the promise jobs `code` left behind (so they are bounded too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.seconds
        racer = compiled.racer
        try:
            async with asyncio.timeout_at(deadline):
                value = await racer.eval_cancelable(code)
                await racer.eval_cancelable("0")
        except (TimeoutError, JSTimeoutException) as exc:
            compiled.close()
            seconds = self.limits.seconds
            raise ScriptError("timeout", f"the script ran over its {seconds * 1000:g} ms") from exc
        except JSOOMException as exc:
            compiled.close()
            mb = self.limits.memory_bytes // (1024 * 1024)
            raise ScriptError("memory", f"the script ran out of its {mb} MB of memory") from exc
        except JSParseException as exc:
            raise located("syntax", str(exc)) from exc
        except JSEvalException as exc:
            raise located(kind, str(exc)) from exc
        return value

    async def _run(self, source: str, function: str, text: str, scope: str, keep: bool) -> str:
        key = script_key(scope, function, source)
        record = self._records.get(key) if keep else None
        if record is not None and record.until > self._clock():
            left = record.until - self._clock()
            raise ScriptError(
                "suspended",
                f"suspended after {record.failures} failures in a row; tried again in {left:.0f} s",
            )
        assert self._slots is not None
        try:
            async with self._slots:
                out = await self._call(key, source, function, text, keep)
        except ScriptError:
            if keep:
                self._failed(key)
            raise
        if keep:
            self._records.pop(key, None)
        return out

    async def _call(self, key: str, source: str, function: str, text: str, keep: bool) -> str:
        call = f"__jsbox.run({orjson.dumps(text).decode()}, {self.limits.result_chars})"
        if not keep:
            compiled = await self._compile(source, function)
            try:
                return self._result(await self._limited(compiled, call))
            finally:
                compiled.close()
        while True:
            found = self._compiled.get(key)
            if found is None:
                fresh = await self._compile(source, function)
                found = self._compiled.get(key)  # another run may have compiled it meanwhile
                if found is None:
                    found = fresh
                    self._keep(key, fresh)
                else:
                    fresh.close()
            compiled = found
            self._compiled.move_to_end(key)
            async with compiled.lock:
                if compiled.closed:  # thrown away while this run waited for it
                    if self._compiled.get(key) is compiled:
                        del self._compiled[key]
                    continue
                try:
                    return self._result(await self._limited(compiled, call))
                finally:
                    if compiled.closed:
                        if self._compiled.get(key) is compiled:
                            del self._compiled[key]
                    elif self._compiled.get(key) is not compiled:
                        compiled.close()  # let go of (least recently used) while it ran

    def _keep(self, key: str, compiled: _Compiled) -> None:
        self._compiled[key] = compiled
        while len(self._compiled) > self._size:
            _, oldest = self._compiled.popitem(last=False)
            if not oldest.lock.locked():  # else its run closes it when it ends
                oldest.close()

    def _result(self, out: Any) -> str:
        if not isinstance(out, str):
            raise ScriptError("result", "the runner returned no JSON")
        if out.startswith("!"):
            raise ScriptError("result", f"the function {out[1:]}")
        return out

    def _failed(self, key: str) -> None:
        record = self._records.pop(key, None) or _Record()
        record.failures += 1
        if record.failures >= self._failures:
            record.until = self._clock() + self._suspend_seconds
        self._records[key] = record
        while len(self._records) > 4 * self._size:
            self._records.popitem(last=False)
