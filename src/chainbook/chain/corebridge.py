"""How the chain workers reach the core: a synchronous ``submit(cmd) -> events``.

The deposit watcher and the withdrawal processor run in a worker thread and only need
"apply this balance command, tell me the events".  ``loop_submitter`` sends it through
a running ``CoreService`` on its event loop (``chainbook serve``); ``engine_submitter``
applies it to a ``DurableEngine`` and commits (tests, tools).  Both return only once
the command is durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from chainbook.domain.commands import Command
from chainbook.domain.enums import Reject
from chainbook.domain.events import Event, OrderRejected

Submit = Callable[[Command], list[Event]]
OK = "OK"


def outcome(events: list[Event]) -> str:
    """"OK" if the command was applied, else the name of its reject reason."""
    for ev in events:
        if isinstance(ev, OrderRejected):
            return Reject(ev.reason).name
    return OK


def loop_submitter(core: Any, loop: asyncio.AbstractEventLoop,
                   timeout_s: float = 30.0) -> Submit:
    """``core.submit`` on ``loop`` from another thread (raises what it raises)."""

    def submit(cmd: Command) -> list[Event]:
        fut = asyncio.run_coroutine_threadsafe(core.submit(cmd), loop)
        return list(fut.result(timeout_s).events)

    return submit


def engine_submitter(de: Any, clock_ns: Callable[[], int] = time.time_ns) -> Submit:
    """Apply to a ``DurableEngine`` and commit (one thread only, like the engine)."""

    def submit(cmd: Command) -> list[Event]:
        _, events = de.submit(cmd, clock_ns())
        de.commit()
        return list(events)

    return submit
