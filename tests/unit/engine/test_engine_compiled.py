"""The compiled core (mypyc, see setup.py) and its Python sources behave identically.

The same seeded command stream runs through the engine in this process (compiled when
the build compiled it) and in a child process that imports the sources
(``CHAINBOOK_PURE_PYTHON=1``); every event and the final state hash must agree."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys

import msgspec
import pytest

from chainbook import _pure

N = 30_000
SEED = 5

RUN = f"""
import hashlib, itertools, sys
import msgspec
from chainbook import _pure
from chainbook.engine import Engine
from chainbook.engine.state import check, state_hash
from chainbook.journal.crashchild import command_stream

eng = Engine()
enc = msgspec.msgpack.Encoder()
h = hashlib.blake2b(digest_size=32)
n = 0
for seq, (cmd, ts) in enumerate(itertools.islice(command_stream({SEED}), {N}), start=1):
    events = eng.apply(cmd, seq, ts)
    n += len(events)
    h.update(enc.encode(events))
check(eng)
print(_pure.compiled_core(), n, h.hexdigest(), state_hash(eng))
"""


def _run(pure: bool) -> list[str]:
    env = dict(os.environ)
    env.pop("CHAINBOOK_PURE_PYTHON", None)
    if pure:
        env["CHAINBOOK_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return out.stdout.split()


def test_the_core_is_compiled_when_the_build_compiled_it():
    if not _pure.compiled_core():
        if os.environ.get("CHAINBOOK_REQUIRE_COMPILED") == "1":
            pytest.fail("CHAINBOOK_REQUIRE_COMPILED=1 but the engine runs from its .py source")
        pytest.skip("the core is not compiled here (built with CHAINBOOK_PURE_PYTHON=1?)")
    from chainbook.book import book, order
    from chainbook.engine import engine

    for module in (book, order, engine):
        assert not module.__file__.endswith(".py"), module.__file__


def test_compiled_and_source_engines_emit_the_same_events_and_state():
    compiled = _run(pure=False)
    source = _run(pure=True)
    assert source[0] == "False"  # the child really ran the sources
    assert compiled[0] == str(_pure.compiled_core())
    assert int(source[1]) > N  # the stream produced events (trades, balances, levels)
    assert compiled[1:] == source[1:]


def test_the_event_digest_sees_a_difference():
    """The digest the equivalence test compares is sensitive to one changed event."""
    from chainbook.engine import Engine
    from chainbook.journal.crashchild import command_stream

    enc = msgspec.msgpack.Encoder()
    digests = []
    for skip in (None, 500):
        eng, h = Engine(), hashlib.blake2b(digest_size=32)
        stream = itertools.islice(command_stream(SEED), 1000)
        for seq, (cmd, ts) in enumerate(stream, start=1):
            if seq != skip:
                h.update(enc.encode(eng.apply(cmd, seq, ts)))
        digests.append(h.hexdigest())
    assert digests[0] != digests[1]
