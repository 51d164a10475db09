"""A write of the event journal that fails after the command log committed: the
commands are durable, so their callers get their results (not "try again", which would
make a client place the order twice), the core stops, and a restart has them.  A write of
the command log itself that fails: the callers learn the status is unknown (the write may
have reached the disk), later submits that it was not applied.

Real failure, no mock: a child process runs the core with RLIMIT_FSIZE just above the
event segment's size, so the next (larger) event frame gets EFBIG while the smaller
command frame still fits, as on a disk that fills up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PRELUDE = r"""
import asyncio, json, resource, signal, sys
from pathlib import Path
from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.service.core import CoreService, CoreUnavailable

data = Path(sys.argv[1])
SPEC = SymbolSpec("BTCUSDT", "BTC", "USDT", lot_units=100, quote_per_tick_lot=1)

async def started():
    core = CoreService(data, {"BTC": 8, "USDT": 8}, fsync="every")
    await core.start()
    await core.ensure_symbols([SPEC])
    await core.deposit(1, "USDT", 10**12, "d1")
    return core
"""

CHILD = PRELUDE + r"""
async def main():
    core = await started()
    events = sorted((data / "events").glob("*.seg"))[-1].stat().st_size
    commands = sorted((data / "commands").glob("*.seg"))[-1].stat().st_size
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (events + 40, resource.RLIM_INFINITY))
    out = {"commands_before": commands, "events_before": events}
    try:
        res = await core.submit(C.PlaceOrder(1, "BTCUSDT", Side.BUY, OrderType.LIMIT, 5,
                                             1000, TimeInForce.GTC, client_id="x1"))
        out["answer"] = [type(e).__name__ for e in res.events]
        out["seq"] = res.seq
    except Exception as exc:
        out["answer"] = f"raised {type(exc).__name__}: {exc}"
    try:
        await core.submit(C.CancelAll(1, "BTCUSDT"))
        out["after"] = "accepted"
    except Exception as exc:
        out["after"] = type(exc).__name__
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    await core.stop()
    print(json.dumps(out))

asyncio.run(main())
"""

REOPEN = r"""
import json, sys
from chainbook.journal.recovery import recover
engine, n, report = recover(sys.argv[1])
print(json.dumps({"last_seq": n, "rewritten": report.events_rewritten}))
"""


def _run(script: str, data: Path) -> dict:
    """Run ``script`` in a child Python on ``data``; its last stdout line, as JSON."""
    run = subprocess.run([sys.executable, "-c", script, str(data)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_failed_event_write_answers_the_durable_command_and_stops(tmp_path: Path):
    data = tmp_path / "data"
    run = subprocess.run([sys.executable, "-c", CHILD, str(data)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    # the order was durable: its caller got the engine's answer, not an error
    assert isinstance(out["answer"], list) and "OrderAccepted" in out["answer"], out
    assert out["after"] == "CoreUnavailable"  # and the core stopped taking commands
    assert "commit failed" in run.stderr
    again = subprocess.run([sys.executable, "-c", REOPEN, str(data)], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    got = json.loads(again.stdout.strip().splitlines()[-1])
    assert got["last_seq"] == out["seq"]  # the acknowledged order is in the log
    assert got["rewritten"] >= 1  # and its events were written at the restart


CMD_FAIL = PRELUDE + r"""
async def main():
    core = await started()
    commands = sorted((data / "commands").glob("*.seg"))[-1].stat().st_size
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (commands + 8, resource.RLIM_INFINITY))
    out = {}
    for name in ("first", "later"):
        try:
            await core.submit(C.PlaceOrder(1, "BTCUSDT", Side.BUY, OrderType.LIMIT, 5,
                                           1000, TimeInForce.GTC, client_id=name))
            out[name] = "accepted"
        except CoreUnavailable as exc:
            out[name] = {"unknown": exc.unknown, "msg": str(exc)}
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    await core.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_a_failed_command_write_is_status_unknown_then_refused(tmp_path: Path):
    data = tmp_path / "data"
    out = _run(CMD_FAIL, data)
    assert out["first"]["unknown"] is True, out  # it reached the log: perhaps durable
    assert out["later"]["unknown"] is False, out  # refused before it was taken
    # here the write did not complete: the torn command is cut (symbol, deposit remain)
    assert _run(REOPEN, data)["last_seq"] == 2
