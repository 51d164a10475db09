"""Durability shell: command log, event journal, snapshots and recovery (docs/journal.md)."""

from chainbook.journal.backend import CorruptLogError, FsyncPolicy, LogBackend, LogError
from chainbook.journal.codec import CorruptRecord, Record, RecordType, TornTail
from chainbook.journal.recovery import (
    DurableEngine,
    EngineFailure,
    JournalLocked,
    RecoveryError,
    RecoveryReport,
    recover,
)
from chainbook.journal.segment_log import SegmentLog, UnencodableEntry
from chainbook.journal.snapshot import CorruptSnapshotError, SnapshotStore, SnapshotWriter

__all__ = [
    "CorruptLogError", "CorruptRecord", "CorruptSnapshotError", "DurableEngine",
    "EngineFailure", "FsyncPolicy", "JournalLocked", "LogBackend", "LogError", "Record",
    "RecordType", "RecoveryError", "RecoveryReport", "SegmentLog", "SnapshotStore",
    "SnapshotWriter", "TornTail", "UnencodableEntry", "recover",
]
