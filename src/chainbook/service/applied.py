"""What the sequencer hands to every consumer: a command applied, durable, with its events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chainbook.domain.commands import Command
from chainbook.domain.events import Event


@dataclass(frozen=True, slots=True)
class Applied:
    """Command ``seq`` (durable) applied at ``ts`` (ns since the epoch) gave ``events``.

    ``command`` is None when the batch is replayed from the event journal at start-up
    (history carries events only); consumers must work from ``events`` alone."""

    seq: int
    ts: int
    command: Command | None
    events: list[Event]


Listener = Callable[[list[Applied], bool], None]
"""``listener(batch, live)``: called on the event-loop thread with each committed batch in
seq order, before the submitters' futures resolve. ``live`` is False while the history is
replayed at start-up (do not publish to clients then). Must not block or raise."""
