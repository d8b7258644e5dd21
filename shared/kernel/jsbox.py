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
  the time (50 ms of V8's clock, judged as below) covers the call and the promise jobs it
  leaves behind, and the heap (32 MB: mini-racer's hard limit on the isolate, which V8
  checks after each garbage collection). A string longer than the heap's limit allows (a
  character is a byte at least) is refused where one call would make it from a short one
  (`repeat`, `padStart`, `padEnd`: a RangeError, as V8's past its own maximum). One
  allocation that no collection follows is bounded by the time: a string doubled in a loop
  to 300 million characters is a tree of a few pieces until something reads it whole (its
  `length` allocates nothing), and writing it out whole took V8 0.3-0.6 s here, past a
  run's 50 ms; what V8 can allocate within 50 ms and let go before a collection (tens of
  MB) may pass 32 MB for that moment (mini-racer sets no heap size of V8's own on an
  isolate). The result is JSON of at most 64 KB.
  mini-racer has no time limit of V8's own (its `eval(timeout_sec=…)` is an asyncio
  deadline around `eval_cancelable`, whose cancelling terminates the isolate's execution),
  so a script's time is V8's view of it: the isolate notes the time before and after each
  evaluation of user code (the script's top level, a call and its promise jobs), queued
  with it on V8's thread. A deadline on the worker's loop stops what still runs then (an
  endless loop), or later, while the worker has spent under half the time of CPU since
  (the machine's other work kept V8's thread off its core: V8's clock counts a thread
  waiting for a core), up to `STRETCH` times the time. What it cut is judged by V8's times
  and that CPU: a script that had its whole time on V8's clock, and the process the CPU
  of half of it at least, is out of it (`timeout`); one that V8 started late, had
  finished when a busy loop woke late, or still had not had its CPU, is evaluated again
  in a new isolate (at most `ATTEMPTS` times in all), so the machine's load never counts
  as a script's time.
  Once a script has run, the runner calls nothing a script can change (a prototype's
  method, an iterator, `Date.now` as the global holds it): its notes of V8's time live in
  objects without a prototype and come back as a string of numbers, so a script that
  replaces `Map.prototype.get` with a loop costs its own 50 ms and no more. What the
  standard library sets up for the whole process at its first use (time zones' data) is
  set up before the worker is ready, and V8 runs without JSON.stringify's fast path (which
  finds a circular result by running out of stack, ~50 ms): neither is a script's time.
- **One isolate per (scope, script)**: a script compiled once, kept (least recently used
  first out), called many times, one run at a time; two scopes (two workspaces) never
  share an isolate, so no script sees another's globals. An isolate whose run timed out
  or ran out of memory is thrown away (it is never trusted again) and the script
  compiled anew at its next run.
- **In a process of its own.** The isolates live in a worker process (`python -m
  shared.kernel.jsbox`), each run on a V8 thread of its own, so a caller awaits a run while its
  event loop goes on, and a script that makes V8 stop its process (V8 aborts on some
  allocations past its limits, such as splitting a 268-million-character string) takes
  only the worker down. A new worker is started at once, before the next run needs it;
  each run that was out then is made once more, alone in the new worker, so the one that
  ended the worker ends only that one and fails (`error`), and the others (another
  workspace's) are answered. A worker that answers nothing for far longer than the limits
  allow is stopped.
- **Fair shares** (`_Fair`): at most `concurrency` runs out at once, and at most
  `per_scope` of one scope's (default: one fewer than `concurrency`); each scope's runs
  wait in a queue of their own, served in turn. A workspace whose scripts loop or end the
  worker has its own queue grow, never another's: a second workspace's run goes out at
  once however many the first has waiting.
- **Batches** (`Sandbox.run_many`): many calls of a kept script cross to the worker in one
  request and run in one V8 evaluation, which hands back, after one call at least, what it
  has done once a run's time has gone (its own limit: three runs' time). A call that gave
  no result there (it threw, took over a run's time, returned a bad result) is run again
  on its own, and so is every call of an evaluation stopped as a whole: a batch changes
  the cost of a run (one pipe's round and one entry into V8 for many), never its outcome.
- **Calls gathered** (`Sandbox.call`): a kept run that crosses with the other calls of its
  script: the first goes at once, as a run; those that come while it is out wait for it,
  then go together as a batch (`run_many`), and so on while calls come. No timer: a call
  waits at most for the request ahead of it, which it would have waited for in the
  isolate anyway (one run at a time), and many callers of one script (a delivery lane's
  workers) share one pipe's round, one turn of each loop and one entry into V8.
- **Suspension.** A script that failed `failures` times in a row (an error, a time-out,
  memory, a bad result) is suspended for `suspend_seconds`: its runs fail at once with
  kind `suspended`, so a looping script cannot cost 50 ms at every event of a batch. The
  next run after that is a trial: a success clears the count, a failure suspends again.
  A suspended script's runs are refused before they queue.
- **Text.** A lone UTF-16 surrogate (half of a pair, which UTF-8 cannot carry) in an
  input is handed to the script escaped, as it was; in a result, it is the script's bad
  result (`result`). A stack shows the script's frames, not the runner's.

Errors are `ScriptError` with a `kind` (syntax, error, timeout, memory, result,
suspended), a message and, where V8 says where, the script's line and column.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import sys
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import orjson
from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    MiniRacer,
    init_mini_racer,
)

__all__ = ["Limits", "Sandbox", "ScriptError"]

# The worker's first line: it has started, V8 too.
READY = b'{"ready":true}'
# How long a worker may take to start (an interpreter and V8, on a machine under load).
START_SECONDS = 60.0

Kind = Literal["syntax", "error", "timeout", "memory", "result", "suspended"]

_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")
# What V8 puts first in the message of an exception thrown by one of our scripts (each is
# evaluated as its own `<anonymous>` script), and the caret line under the source line.
_WHERE = re.compile(r"^<anonymous>:(\d+): ?(.*)$")
# An exception the runner throws for a script (a string past the limit) is located by the
# script's innermost frame in its stack.
_THROWN_FOR = re.compile(r"^jsbox:\d+: ?(.*)$")
_FRAME = re.compile(r"^\s+at .*<anonymous>:(\d+):(\d+)\)?$")
_MESSAGE_CHARS = 300
# The runner's evaluations are named (a script's are `<anonymous>`), so that a stack shows
# a script its own frames only.
_OURS = "\n//# sourceURL=jsbox"

# Run before any user code, in every isolate: takes away what could outlive a run or escape
# the heap limit, and installs
# the runner, with JSON's functions as they were (a script that changes `JSON` changes only
# what it does itself). The runner's evaluations are named `jsbox` (_OURS).
_PREPARE = r"""
((most) => {
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
  // One call that would make a string longer than the heap's limit (`most` characters: one
  // byte each at least) from a short one is refused, as V8 refuses one past its own
  // maximum: such a string is a tree of a few pieces, which costs nothing until it is read
  // whole and then is one allocation that no collection checks (module docstring). What
  // a call is given is converted once, before it is measured.
  const Text = String, Num = Number, trunc = Math.trunc, define = Object.defineProperty;
  const TooLong = RangeError, proto = String.prototype;
  const refuse = (n) => {
    throw new TooLong(
      "Invalid string length: " + n + " characters, over the sandbox's " +
      most / 1048576 + " MB"
    );
  };
  const repeat = proto.repeat, padStart = proto.padStart, padEnd = proto.padEnd;
  const pad = (original) => ({
    pad(maxLength, fill) {
      "use strict";
      if (this === null || this === undefined) return original.call(this, maxLength, fill);
      const text = Text(this), length = trunc(Num(maxLength));
      const filler = fill === undefined ? fill : Text(fill);
      if (length > most && length > text.length && filler !== "") refuse(length);
      return original.call(text, length, filler);
    },
  }).pad;
  const bounded = {
    repeat(count) {
      "use strict";
      if (this === null || this === undefined) return repeat.call(this, count);
      const text = Text(this), times = Num(count);
      if (text.length > 0 && trunc(times) * text.length > most && times !== Infinity) {
        refuse(trunc(times) * text.length);
      }
      return repeat.call(text, times);
    },
    padStart: pad(padStart),
    padEnd: pad(padEnd),
  };
  for (const name of ["repeat", "padStart", "padEnd"]) {
    const fn = bounded[name];
    define(fn, "name", {value: name});
    define(fn, "length", {value: 1});
    define(proto, name, {value: fn, writable: true, enumerable: false, configurable: true});
  }
  // Everything the runner does once user code has run goes through these, taken now: no
  // method looked up on a prototype (Map.prototype.get, Array.prototype.push, an
  // iterator), which a script could replace with a loop or a lie.
  const parse = JSON.parse, stringify = JSON.stringify, Pending = Promise, now = Date.now;
  const isArray = Array.isArray;
  let entry;
  // The last timed evaluations' numbers, starts and ends on V8's clock (Isolates._timed),
  // in a ring of 16, in objects without a prototype (an index written is the object's own,
  // never a setter a script put on Object.prototype).
  const numbers = Object.create(null), starts = Object.create(null);
  const ends = Object.create(null);
  const begin = (n) => {
    const slot = n % 16;
    numbers[slot] = n;
    starts[slot] = now();
    ends[slot] = undefined;
  };
  // A stack shows the script's frames, not the runner's (its evaluations are `jsbox`).
  Error.prepareStackTrace = (error, frames) => {
    let text = "";
    try {
      text = String(error);
    } catch (e) {
      text = "Error";
    }
    for (let i = 0; i < frames.length; i++) {
      if (frames[i].getScriptNameOrSourceURL() !== "jsbox") text += "\n    at " + frames[i];
    }
    return text;
  };
  const runner = Object.freeze({
    begin,
    end(n) {
      if (numbers[n % 16] === n) ends[n % 16] = now();
    },
    // "start,end" (end left empty while the evaluation has not ended), "" if it never
    // began: a string made of numbers, which no script's toJSON or toString can change.
    span(n) {
      const slot = n % 16;
      if (numbers[slot] !== n) return "";
      numbers[slot] = undefined;
      const end = ends[slot];
      return starts[slot] + "," + (end === undefined ? "" : end);
    },
    bind(fn) {
      entry = fn;
      return typeof fn === "function";
    },
    // A run and a batch note their own start (`n`): one evaluation fewer to queue.
    run(n, input, limit) {
      begin(n);
      const value = entry(parse(input));
      if (value instanceof Pending) return "!returned a Promise: the function cannot be async";
      let out;
      try {
        out = stringify(value);
      } catch (e) {
        let why = "";
        try {
          why = String(e && e.message ? e.message : e);
        } catch (e2) {
          why = "it threw";
        }
        return "!returned what is not JSON: " + why;
      }
      if (out === undefined) return "!returned nothing (undefined)";
      if (typeof out !== "string") return "!returned what is not JSON";
      if (out.length > limit) {
        return "!returned " + out.length + " characters of JSON, over " + limit;
      }
      return out;
    },
    // Many calls in one evaluation: each call's result as JSON, or null where the call
    // did not give one within its limits (the caller runs that one again on its own, for
    // the exact error); stopping, after at least one call, once `budget` ms have gone.
    runMany(n, input, limit, ms, budget) {
      begin(n);
      const started = now();
      const items = parse(input);
      if (!isArray(items)) return "[]";
      let out = "[";
      for (let i = 0; i < items.length; i++) {
        if (i > 0 && now() - started >= budget) break;
        const start = now();
        let text = null;
        try {
          const value = entry(items[i]);
          if (!(value instanceof Pending)) {
            const given = stringify(value);
            if (typeof given === "string" && given.length <= limit) text = given;
          }
        } catch (e) {
          text = null;
        }
        if (now() - start > ms) text = null;
        out += (i > 0 ? "," : "") + (text === null ? "null" : stringify(text));
      }
      return out + "]";
    },
  });
  Object.defineProperty(g, "__jsbox", {value: runner, writable: false, configurable: false});
})(MOST_CHARACTERS);
//# sourceURL=jsbox
"""


# V8's flags in the worker. JSON.stringify's fast path (V8 14) finds a circular structure
# only by running out of stack, ~50 ms: a whole run's time, for what is "not JSON".
_FLAGS = ("--single-threaded", "--no-json-stringify-fast-path")
# Evaluated once in the worker before it says it is ready: what V8 and ICU set up for the
# whole process at the standard library's first use (time zones' data: ~140 ms on a
# loaded machine; an error's first stack), so that no script's first run pays for it.
_WARM = """
new Intl.DateTimeFormat("en-US", {timeZone: "Europe/Paris", timeStyle: "long"}).format(0);
new Intl.NumberFormat("de-DE", {style: "currency", currency: "EUR"}).format(1.5);
new Date(0).toLocaleString("ja-JP", {timeZone: "Asia/Tokyo"});
new Intl.RelativeTimeFormat("en").format(-1, "day");
"a".localeCompare("b");
String(new TypeError("x").stack);
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
    thrown = _THROWN_FOR.match(lines[0]) if found is None else None
    if thrown is not None:
        message = thrown.group(1)[:_MESSAGE_CHARS] or "the script failed"
        for each in lines[1:]:
            if (frame := _FRAME.match(each)) is not None:
                return ScriptError(kind, message, int(frame.group(1)), int(frame.group(2)))
        return ScriptError(kind, message)
    if found is None:
        return ScriptError(kind, lines[0][:_MESSAGE_CHARS] or "the script failed")
    line, message = int(found.group(1)), found.group(2)
    column = None
    if len(lines) > 2 and "^" in lines[2]:
        column = lines[2].index("^") + 1
    return ScriptError(kind, message[:_MESSAGE_CHARS] or "the script failed", line, column)


@dataclass
class _Record:
    """A script's failures in a row, and until when (monotonic) it is suspended."""

    failures: int = 0
    until: float = 0.0


def script_key(scope: str, function: str, source: str) -> str:
    digest = hashlib.sha256(f"{function}\0{source}".encode()).hexdigest()
    return f"{scope}\0{digest}"


# A reply line may carry a whole result; a request line a whole payload.
_LINE_LIMIT = 256 * 1024 * 1024
# A batch of runs (Sandbox.run_many): at most this many calls, and this many characters of
# their inputs' JSON, in one evaluation (a call whose input is larger goes alone); its
# evaluation's limit, in runs' time (module docstring).
BATCH_RUNS = 200
BATCH_CHARS = 1024 * 1024
BATCH_SECONDS = 3
# How many times an evaluation cut short before it had its time is made (module docstring).
ATTEMPTS = 3
# How long an evaluation the machine keeps off its core is waited for, in its time's
# multiples, all told, before it is cut (and made again).
STRETCH = 5
# How long the isolate may take to tell what it saw of an evaluation that was cut.
_SPAN_SECONDS = 1.0


class Sandbox:
    """Runs scripts (module docstring), in a worker process started at the first run."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        compiled: int = 32,
        concurrency: int = 2,
        per_scope: int | None = None,
        failures: int = 5,
        suspend_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._size = compiled
        self._failures = failures
        self._suspend_seconds = suspend_seconds
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._fair = _Fair(concurrency, per_scope or max(1, concurrency - 1))
        self._replacing: asyncio.Task[_Worker] | None = None
        self._worker: _Worker | None = None
        self._starting = asyncio.Lock()
        self._gathered: dict[str, _Gathered] = {}
        # The longest a run may take in the worker: its source, the binding and the call,
        # each within the limit, behind at most one run of the same script; past this the
        # worker is taken to be stuck.
        self._guard = 8 * STRETCH * self.limits.seconds + 2.0

    async def check(self, source: str, function: str = "handler", *, scope: str = "") -> None:
        """Compiles `source` in a fresh isolate (running its top level, within the limits)
        and checks that it defines `function`, in `scope`'s queue. Raises ScriptError."""
        _check_name(function)
        key = script_key(scope, function, source)  # the worker reads no key of a check
        await self._ask({"op": "check", "key": key, "source": source, "function": function})

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
        _check_name(function)
        key = script_key(scope, function, source)
        return await self._run(key, source, function, _encoded(data), keep=keep)

    async def run_many(
        self, source: str, items: Sequence[Any], *, function: str = "handler", scope: str = ""
    ) -> list[Any]:
        """`function(item)` for each of `items`, in order, each as `run` (kept): its result,
        or the ScriptError it gave, in its place. The calls cross to the worker in batches,
        many in one V8 evaluation (one pipe's round and one entry into V8 for all of them,
        where each run pays both); a call that gave no result there is run again on its
        own, and so is every call of a batch that failed as a whole, so that an error, the
        limits and the count towards suspension are exactly a run's. While a script has
        failures in a row, its calls are runs, one at a time."""
        _check_name(function)
        key = script_key(scope, function, source)
        return await self._many(key, source, function, [_encoded(item) for item in items])

    async def call(
        self, source: str, data: Any, *, function: str = "handler", scope: str = ""
    ) -> Any:
        """`run(source, data)` (kept), gathered with the script's other calls (module
        docstring): the same result, or the same ScriptError. A caller that gives up leaves
        the others' request going."""
        _check_name(function)
        key = script_key(scope, function, source)
        self._unless_suspended(key)
        text = _encoded(data)  # data that is not JSON fails this call alone
        loop = asyncio.get_running_loop()
        gathered = self._gathered.get(key)
        if gathered is None or gathered.sender.done() or gathered.sender.get_loop() is not loop:
            # A task, which starts at the loop's next turn: the calls of this turn (a lane's
            # workers woken together) go in its first request. (Sending this call at once
            # and gathering the others behind it made two requests of each such turn: a
            # third fewer transformations a second on a busy loop.)
            gathered = self._gathered[key] = _Gathered()
            gathered.sender = loop.create_task(self._send(key, gathered, source, function))
        reply: asyncio.Future[Any] = loop.create_future()
        gathered.calls.append((text, reply))
        outcome = await reply
        if isinstance(outcome, ScriptError):
            raise outcome
        return outcome

    async def _send(self, key: str, gathered: _Gathered, source: str, function: str) -> None:
        """The script's gathered calls, a request at a time, until none waits."""
        calls: list[tuple[bytes, asyncio.Future[Any]]] = []
        try:
            while gathered.calls:
                calls = [call for call in gathered.calls if not call[1].done()]
                gathered.calls = []
                outcomes: list[Any] = []
                if len(calls) == 1:
                    outcomes = [await self._alone(key, source, function, calls[0][0])]
                elif calls:
                    outcomes = await self._many(key, source, function, [t for t, _ in calls])
                for (_, reply), outcome in zip(calls, outcomes, strict=True):
                    if not reply.done():
                        reply.set_result(outcome)
                calls = []
        except BaseException as exc:  # the sandbox's own trouble, or the loop's end
            for _, reply in [*calls, *gathered.calls]:
                if reply.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    reply.cancel()
                else:
                    reply.set_exception(exc)  # told to each caller, not left to the task
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if self._gathered.get(key) is gathered:
                del self._gathered[key]

    async def _run(self, key: str, source: str, function: str, text: bytes, *, keep: bool) -> Any:
        """A run of `text`, the input's JSON (`run`)."""
        if keep:
            self._unless_suspended(key)
        request = {
            "op": "run",
            "key": key,
            "source": source,
            "function": function,
            "text": text.decode(),
            "keep": keep,
        }
        try:
            value = _decoded(await self._ask(request))
        except ScriptError:
            if keep:
                self._failed(key)
            raise
        if keep:
            self._records.pop(key, None)
        return value

    async def _many(self, key: str, source: str, function: str, texts: list[bytes]) -> list[Any]:
        """Kept runs of `texts`, the inputs' JSON, in batches (`run_many`)."""
        results: list[Any] = [None] * len(texts)
        start = 0
        while start < len(texts):
            if key in self._records:  # failures in a row: a run, until one succeeds
                results[start] = await self._alone(key, source, function, texts[start])
                start += 1
                continue
            end = _batch_end(texts, start)
            request = {
                "op": "runs",
                "key": key,
                "source": source,
                "function": function,
                "text": (b"[" + b",".join(texts[start:end]) + b"]").decode(),
            }
            given: list[str | None] = []
            with contextlib.suppress(ScriptError):
                given = _batch_results(await self._ask(request), end - start)
            if given:
                end = start + len(given)
            for n in range(start, end):
                text = given[n - start] if given else None
                try:
                    if text is None:
                        raise ScriptError("result", "no result in the batch")
                    results[n] = _decoded(text)
                    self._records.pop(key, None)
                except ScriptError:  # run on its own, for the run's exact error
                    results[n] = await self._alone(key, source, function, texts[n])
            start = end
        return results

    async def _alone(self, key: str, source: str, function: str, text: bytes) -> Any:
        """A kept run, its ScriptError returned in its place."""
        try:
            return await self._run(key, source, function, text, keep=True)
        except ScriptError as exc:
            return exc

    def suspended(self, source: str, *, function: str = "handler", scope: str = "") -> bool:
        record = self._records.get(script_key(scope, function, source))
        return record is not None and record.until > self._clock()

    async def close(self) -> None:
        if self._replacing is not None:
            self._replacing.cancel()
            with contextlib.suppress(BaseException):
                await self._replacing
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()

    async def _ask(self, request: dict[str, Any]) -> str:
        """`request`'s answer, in its scope's turn (_Fair). A run that was out when V8
        ended the worker's process is made once more, alone in a new worker: the run that
        ended it ends that one too, and nothing else with it."""
        scope = str(request.get("key", "")).partition("\0")[0]
        try:
            async with self._fair.slot(scope):
                return await self._asked(request)
        except _Crashed:
            pass
        async with self._fair.alone():
            try:
                return await self._asked(request)
            except _Crashed as exc:
                raise ScriptError("error", exc.message) from None

    async def _asked(self, request: dict[str, Any]) -> str:
        worker = await self._running()
        try:
            async with asyncio.timeout(self._guard):
                return await worker.ask(request)
        except TimeoutError:
            await worker.stop()
            raise ScriptError("timeout", "the sandbox did not answer: it was restarted") from None
        except _Crashed:
            self._replace()
            raise

    def _replace(self) -> None:
        """A new worker started now, for the next run, once V8 ended the last one."""
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.get_running_loop().create_task(self._running())
            self._replacing.add_done_callback(_quiet)

    async def _running(self) -> _Worker:
        async with self._starting:
            worker = self._worker
            if worker is None or not worker.alive or worker.loop is not asyncio.get_running_loop():
                if worker is not None:
                    await worker.stop()
                self._worker = worker = await _Worker.start(self.limits, self._size)
            return worker

    def _unless_suspended(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None and record.until > self._clock():
            left = record.until - self._clock()
            raise ScriptError(
                "suspended",
                f"suspended after {record.failures} failures in a row; tried again in {left:.0f} s",
            )

    def _failed(self, key: str) -> None:
        record = self._records.pop(key, None) or _Record()
        record.failures += 1
        if record.failures >= self._failures:
            record.until = self._clock() + self._suspend_seconds
        self._records[key] = record
        while len(self._records) > 4 * self._size:
            self._records.popitem(last=False)


class _Crashed(ScriptError):
    """The worker's process ended on its own (V8 aborted it) while a request was out."""

    def __init__(self) -> None:
        super().__init__(
            "error", "the script stopped the sandbox (V8 ended its process): not run again"
        )


def _quiet(task: asyncio.Task[Any]) -> None:
    """A background start's failure is the next run's to see (it starts one again)."""
    if not task.cancelled():
        task.exception()


class _Fair:
    """The worker's slots, shared fairly among scopes (workspaces): each scope's requests
    wait in a queue of their own, at most `per_scope` of them out at once, and a slot that
    frees goes to the next scope in turn. So a scope whose scripts loop or crash has its
    own queue grow and its own runs wait, never another's: with two slots and one a scope,
    a second scope's run is out at once, however many the first has waiting."""

    def __init__(self, slots: int, per_scope: int) -> None:
        self._free = slots
        self._per_scope = per_scope
        self._out: dict[str, int] = {}
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._held = False  # by a request made alone: nothing else goes out meanwhile
        self._alone = asyncio.Lock()
        self._idle: asyncio.Future[None] | None = None

    @contextlib.asynccontextmanager
    async def slot(self, scope: str) -> AsyncIterator[None]:
        # Whenever a slot is free, no scope that may take one waits (_grant runs at each
        # release): a scope under its share takes it at once.
        if not self._held and self._free > 0 and self._out.get(scope, 0) < self._per_scope:
            self._take(scope)
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(scope, deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # given a slot as it gave up
                    self._release(scope)
                raise
        try:
            yield
        finally:
            self._release(scope)

    @contextlib.asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        """The worker for one request alone: once what is out has come back."""
        async with self._alone:
            self._held = True
            try:
                while len(self._out) > 0:
                    self._idle = asyncio.get_running_loop().create_future()
                    await self._idle
                yield
            finally:
                self._held = False
                self._grant()

    def _take(self, scope: str) -> None:
        self._free -= 1
        self._out[scope] = self._out.get(scope, 0) + 1

    def _release(self, scope: str) -> None:
        self._free += 1
        self._out[scope] -= 1
        if self._out[scope] == 0:
            del self._out[scope]
        if not self._out and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        self._grant()

    def _grant(self) -> None:
        """Free slots to the scopes waiting, one a turn, in the order they came to wait."""
        while self._free > 0 and not self._held:
            scope = next((s for s in self._waiting if self._out.get(s, 0) < self._per_scope), None)
            if scope is None:
                return
            queue = self._waiting.pop(scope)
            turn = queue.popleft()
            if queue:
                self._waiting[scope] = queue  # at the back: the other scopes' turn first
            if not turn.done():
                self._take(scope)
                turn.set_result(None)


@dataclass
class _Gathered:
    """A kept script's calls waiting for the request ahead of them (Sandbox.call), and the
    task that sends them."""

    calls: list[tuple[Any, asyncio.Future[Any]]] = field(default_factory=list)
    sender: asyncio.Task[None] = field(init=False)


def _batch_end(texts: list[bytes], start: int) -> int:
    """Where the batch from `start` ends: BATCH_RUNS calls, BATCH_CHARS of input, one at
    least."""
    end, size = start + 1, len(texts[start])
    while end < len(texts) and end - start < BATCH_RUNS and size + len(texts[end]) <= BATCH_CHARS:
        size += len(texts[end])
        end += 1
    return end


def _batch_results(out: str, count: int) -> list[str | None]:
    """The worker's answer to a batch: a result's JSON or null for each call it made (some
    of the first `count`, one at least); anything else is no answer."""
    try:
        given = orjson.loads(out)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(given, list) or not 0 < len(given) <= count:
        return []
    if not all(text is None or isinstance(text, str) for text in given):
        return []
    return given


def _encoded(data: Any) -> bytes:
    """`data` as JSON. A string holding a lone surrogate (`"\\ud800"`, which UTF-8 cannot
    carry, and which a webhook's JSON may) is written escaped, as JavaScript's JSON.stringify
    writes it: the script sees it as it was. Raises TypeError for what is not JSON."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        if "surrogates not allowed" not in str(exc):
            raise
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def _decoded(out: str) -> Any:
    """A result's JSON, as the runner gave it. JSON.stringify escapes a lone surrogate
    (`"\\ud800"`), which is no Unicode text: the script's fault, a bad result."""
    try:
        return orjson.loads(out)
    except orjson.JSONDecodeError:
        raise ScriptError(
            "result", "the function returned a string with a lone surrogate: not Unicode text"
        ) from None


def _check_name(function: str) -> None:
    if not _NAME.match(function):
        raise ValueError(f"not a function name: {function!r}")


class _Lines(asyncio.Protocol):
    """A pipe read a line at a time (the worker's replies in the parent, the parent's
    requests in the worker): each handed on in the loop's turn that reads it (a reader
    task would take one more turn of a busy loop for each line)."""

    def __init__(self, on_line: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self._on_line = on_line
        self._on_end = on_end
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            self._on_line(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > _LINE_LIMIT:
            raise ValueError("a line over the limit")  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_end()


class _Worker:
    """The worker process, as its parent sees it: one JSON line per request and reply."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.loop = asyncio.get_running_loop()
        self.alive = True
        self.stopped = False  # by its parent (stop): not ended by V8
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[bytes] = self.loop.create_future()
        self._ended: asyncio.Future[None] = self.loop.create_future()
        self._replies: asyncio.ReadTransport | None = None

    @classmethod
    async def start(cls, limits: Limits, size: int) -> _Worker:
        settings = orjson.dumps(
            {
                "seconds": limits.seconds,
                "memory_bytes": limits.memory_bytes,
                "result_chars": limits.result_chars,
                "size": size,
            }
        ).decode()
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shared.kernel.jsbox",
                settings,
                stdin=asyncio.subprocess.PIPE,
                stdout=write_end,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the worker's now: its end closes when the worker ends
        worker = cls(process)
        worker._replies, _ = await worker.loop.connect_read_pipe(
            lambda: _Lines(worker._line, worker._end), os.fdopen(read_end, "rb", buffering=0)
        )
        # Ready once V8 is: an interpreter and V8 starting on a busy machine take seconds,
        # which are no script's (the guard of each request counts from here).
        try:
            async with asyncio.timeout(START_SECONDS):
                ready = await asyncio.shield(worker._ready)
        except (TimeoutError, ScriptError):
            ready = b""
        if ready.strip() != READY:
            await worker.stop()
            raise ScriptError("error", "the sandbox did not start")
        return worker

    async def ask(self, request: dict[str, Any]) -> str:
        if not self.alive:
            raise ScriptError("error", "the sandbox stopped before the script ran")
        self._next += 1
        ident = self._next
        reply: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._waiting[ident] = reply
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(orjson.dumps({**request, "id": ident}) + b"\n")
            await self.process.stdin.drain()
            answer = await reply
        except asyncio.CancelledError:
            if self.alive:  # the caller gave up: V8 stops the script
                self.process.stdin.write(orjson.dumps({"op": "cancel", "id": ident}) + b"\n")
            raise
        except (ConnectionError, RuntimeError) as exc:
            raise ScriptError("error", "the sandbox stopped while the script ran") from exc
        finally:
            self._waiting.pop(ident, None)
        if "error" in answer:
            error = answer["error"]
            raise ScriptError(error["kind"], error["message"], error["line"], error["column"])
        out: str = answer["out"]
        return out

    def _line(self, line: bytes) -> None:
        if not self._ready.done():
            self._ready.set_result(line)
            return
        answer = orjson.loads(line)
        waiting = self._waiting.get(answer["id"])
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)

    def _end(self) -> None:
        self.alive = False
        crashed = (
            ScriptError("error", "the sandbox was stopped while the script ran")
            if self.stopped
            else _Crashed()
        )
        pending: list[asyncio.Future[Any]] = [self._ready, *self._waiting.values()]
        for waiting in pending:
            if not waiting.done():
                waiting.set_exception(crashed)
        if not self._ended.done():
            self._ended.set_result(None)

    async def stop(self) -> None:
        self.alive = False
        self.stopped = True
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        if self._replies is not None:
            self._replies.close()
            await self._ended
        self._end()


# The worker process ----------------------------------------------------------------------


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


# What `_timed` evaluates: a script, which a note of V8's time before it is queued with,
# or the runner's call that notes its own start, given the evaluation's number.
Evaluation = str | Callable[[int], str]


class _Cut(Exception):
    """An evaluation stopped at the loop's deadline before it had its time on V8's clock:
    made again, in a new isolate."""


class _Isolates:
    """The worker's isolates: compiled scripts kept by key, least recently used first out."""

    def __init__(
        self, limits: Limits, size: int, cpu: Callable[[], float] = time.process_time
    ) -> None:
        self.limits = limits
        # The worker's CPU time, in seconds (every thread's: V8's and the loop's).
        self._cpu = cpu
        # What each isolate evaluates first, with its heap's limit in characters.
        self._prepare = _PREPARE.replace("MOST_CHARACTERS", str(limits.memory_bytes))
        self._size = size
        self._compiled: OrderedDict[str, _Compiled] = OrderedDict()
        self._evaluations = 0

    async def check(self, source: str, function: str) -> str:
        async def once() -> None:
            (await self._compile(source, function)).close()

        await self._attempts(once)
        return "null"

    async def run(self, key: str, source: str, function: str, text: str, keep: bool) -> str:
        literal = orjson.dumps(text).decode()

        def call(n: int) -> str:
            return f"__jsbox.run({n}, {literal}, {self.limits.result_chars}){_OURS}"

        async def once() -> Any:
            if keep:
                return await self._kept(key, source, function, call, self.limits.seconds)
            compiled = await self._compile(source, function)
            try:
                return await self._limited(compiled, call)
            finally:
                compiled.close()

        return _result(await self._attempts(once))

    async def runs(self, key: str, source: str, function: str, text: str) -> str:
        """Many calls of the kept script in one evaluation (`text`: a JSON array of their
        inputs): a JSON array of each call's result's JSON, or null where the caller must
        run that call on its own; cut short, after one call at least, once a run's time
        has gone by, so the evaluation's limit is a run's time twice, and some to spare."""
        ms = self.limits.seconds * 1000
        literal = orjson.dumps(text).decode()

        def call(n: int) -> str:
            limit = self.limits.result_chars
            return f"__jsbox.runMany({n}, {literal}, {limit}, {ms:g}, {ms:g}){_OURS}"

        seconds = BATCH_SECONDS * self.limits.seconds
        out = await self._attempts(lambda: self._kept(key, source, function, call, seconds))
        if not isinstance(out, str):
            raise ScriptError("result", "the runner returned no JSON")
        return out

    async def _attempts(self, once: Callable[[], Awaitable[Any]]) -> Any:
        """`once()`, made again while an evaluation of it is cut before its time."""
        for _ in range(ATTEMPTS):
            try:
                return await once()
            except _Cut:
                continue
        ms = self.limits.seconds * 1000
        busy = f"the sandbox was too busy to give the script its {ms:g} ms, {ATTEMPTS} times"
        raise ScriptError("timeout", busy)

    async def _kept(
        self, key: str, source: str, function: str, call: Evaluation, seconds: float
    ) -> Any:
        """`call` evaluated in the script's kept isolate (compiled at its first run), one
        evaluation at a time."""
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
                    return await self._limited(compiled, call, seconds=seconds)
                finally:
                    if compiled.closed:
                        if self._compiled.get(key) is compiled:
                            del self._compiled[key]
                    elif self._compiled.get(key) is not compiled:
                        compiled.close()  # let go of (least recently used) while it ran

    async def _compile(self, source: str, function: str) -> _Compiled:
        """A new isolate with `source` evaluated and `function` bound as the entry."""
        racer = MiniRacer()
        compiled = _Compiled(racer)
        try:
            racer.set_hard_memory_limit(self.limits.memory_bytes)
            await racer.eval_cancelable(self._prepare)
            await self._limited(compiled, source, "syntax")
            bound = await self._limited(
                compiled,
                f"__jsbox.bind(typeof {function} === 'function' ? {function} : 0){_OURS}",
            )
            if bound is not True:
                raise ScriptError("error", f"the script defines no function {function}")
        except BaseException:
            compiled.close()
            raise
        return compiled

    async def _limited(
        self,
        compiled: _Compiled,
        code: Evaluation,
        kind: Kind = "error",
        *,
        seconds: float | None = None,
    ) -> Any:
        """`code` evaluated within the time limit (a run's, unless `seconds`), with the
        promise jobs it leaves behind (module docstring). Raises ScriptError, or _Cut."""
        limit = self.limits.seconds if seconds is None else seconds
        try:
            return await self._timed(compiled, code, limit)
        except (TimeoutError, JSTimeoutException) as exc:
            compiled.close()
            ms = self.limits.seconds * 1000
            raise ScriptError("timeout", f"the script ran over its {ms:g} ms") from exc
        except _Cut:
            compiled.close()  # it may have stopped half-way: never trusted again
            raise
        except JSOOMException as exc:
            compiled.close()
            mb = self.limits.memory_bytes // (1024 * 1024)
            raise ScriptError("memory", f"the script ran out of its {mb} MB of memory") from exc
        except JSParseException as exc:
            raise located("syntax", str(exc)) from exc
        except JSEvalException as exc:
            raise located(kind, str(exc)) from exc

    async def _timed(self, compiled: _Compiled, code: Evaluation, seconds: float) -> Any:
        """`code`, between two notes of V8's time queued with it (`__jsbox.begin`, or the
        runner's call noting its own start, and `end`, which runs after the promise jobs
        `code` left). At the loop's deadline, what still runs is waited for while the
        worker has spent under half its time of CPU since it was queued (the machine's other
        work kept V8's thread off its core), up to `STRETCH` times its time in all; then it
        is stopped, and V8's times and the CPU spent say whether it had its time
        (TimeoutError) or not (_Cut)."""
        cpu = self._cpu()
        self._evaluations += 1
        n = self._evaluations
        racer = compiled.racer
        loop = asyncio.get_running_loop()
        queued = loop.time()
        # Each a round trip to V8's thread and back (~0.1 ms): a run is two, not three.
        if isinstance(code, str):
            evaluations = [f"__jsbox.begin({n}){_OURS}", code, f"__jsbox.end({n}){_OURS}"]
        else:
            evaluations = [code(n), f"__jsbox.end({n}){_OURS}"]
        # Queued on V8's thread back to back, in this order, with no turn of the loop between.
        tasks = [loop.create_task(racer.eval_cancelable(each)) for each in evaluations]
        call = tasks[-2]
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        while pending:
            # CPU accrues at a core a thread at most: the least wall time to its half.
            starved = seconds / 2 - (self._cpu() - cpu)
            left = STRETCH * seconds - (loop.time() - queued)
            if starved <= 0 or left <= 0:
                break
            _, pending = await asyncio.wait(pending, timeout=min(starved, left))
        if not pending:
            return call.result()
        cut_ms = time.time() * 1000  # the realtime clock, as JavaScript's Date.now()
        spent_ms = (self._cpu() - cpu) * 1000  # an evaluation beside this one's counts too
        for task in pending:
            task.cancel()
        await asyncio.wait(tasks)
        try:
            async with asyncio.timeout(_SPAN_SECONDS):
                span = await racer.eval_cancelable(f"__jsbox.span({n}){_OURS}")
        except (TimeoutError, JSEvalException):
            raise TimeoutError from None  # the isolate is still taken: whatever ran, ran long
        if span == "":
            raise _Cut  # V8 never began it
        start, finish = _span_of(span)
        if finish is not None and call not in pending:
            return call.result()  # done in time (its promise jobs too): the loop woke late
        ran_ms = (cut_ms if finish is None else finish) - start
        if ran_ms >= seconds * 1000 and spent_ms >= seconds * 1000 / 2:
            raise TimeoutError
        raise _Cut

    def _keep(self, key: str, compiled: _Compiled) -> None:
        self._compiled[key] = compiled
        while len(self._compiled) > self._size:
            _, oldest = self._compiled.popitem(last=False)
            if not oldest.lock.locked():  # else its run closes it when it ends
                oldest.close()


def _span_of(text: Any) -> tuple[float, float | None]:
    """The runner's "start,end" (ms on V8's clock; end empty while it ran). Anything else
    (which the runner never gives) is taken as a run that had its time: never trusted."""
    try:
        start, _, finish = str(text).partition(",")
        return float(start), float(finish) if finish else None
    except ValueError:
        raise TimeoutError from None


def _result(out: Any) -> str:
    if not isinstance(out, str):
        raise ScriptError("result", "the runner returned no JSON")
    if out.startswith("!"):
        raise ScriptError("result", f"the function {out[1:]}")
    return out


async def _serve(isolates: _Isolates, requests: IO[bytes], replies: IO[bytes]) -> None:
    """Answers the parent's requests, each as it comes, until its end of the pipe closes."""
    loop = asyncio.get_running_loop()
    running: dict[int, asyncio.Task[None]] = {}
    ended: asyncio.Future[None] = loop.create_future()

    async def answer(request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": request["id"]}
        try:
            if request["op"] == "check":
                reply["out"] = await isolates.check(request["source"], request["function"])
            elif request["op"] == "runs":
                reply["out"] = await isolates.runs(
                    request["key"], request["source"], request["function"], request["text"]
                )
            else:
                reply["out"] = await isolates.run(
                    request["key"],
                    request["source"],
                    request["function"],
                    request["text"],
                    request["keep"],
                )
        except ScriptError as exc:
            reply["error"] = {
                "kind": exc.kind,
                "message": exc.message,
                "line": exc.line,
                "column": exc.column,
            }
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the worker's own trouble, told to the parent
            reply["error"] = {
                "kind": "error",
                "message": f"the sandbox failed: {exc!r}"[:_MESSAGE_CHARS],
                "line": None,
                "column": None,
            }
        finally:
            running.pop(request["id"], None)
        replies.write(orjson.dumps(reply) + b"\n")
        replies.flush()

    def request(line: bytes) -> None:
        request = orjson.loads(line)
        if request["op"] == "cancel":
            task = running.get(request["id"])
            if task is not None:
                task.cancel()
            return
        running[request["id"]] = loop.create_task(answer(request))

    def end() -> None:
        if not ended.done():
            ended.set_result(None)

    await loop.connect_read_pipe(lambda: _Lines(request, end), requests)
    await ended


async def _main(settings: dict[str, Any]) -> None:
    # Replies go to the original stdout alone; anything else written there (by V8, by a
    # library) goes to stderr instead, so it cannot break a reply.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    limits = Limits(settings["seconds"], settings["memory_bytes"], settings["result_chars"])
    init_mini_racer(flags=_FLAGS)
    with MiniRacer() as racer:  # V8 started, and warmed, before the parent is told it is ready
        racer.eval(_WARM)
    replies.write(READY + b"\n")
    replies.flush()
    await _serve(_Isolates(limits, settings["size"]), sys.stdin.buffer, replies)


if __name__ == "__main__":
    asyncio.run(_main(orjson.loads(sys.argv[1])))
