"""The deterministic core: apply(cmd, seq, ts) -> events, state export/import and hash."""

from chainbook.engine.engine import Engine, SequenceError

__all__ = ["Engine", "SequenceError"]
