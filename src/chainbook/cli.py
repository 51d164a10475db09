"""Command line: run the exchange on its embedded defaults (local files, no services).

    chainbook serve   [--data DIR] [--config FILE] [--host H] [--port P] [--demo]
                      [--fsync every|interval|off] [--multicast GROUP:PORT]
                                     the exchange: Binance-compatible REST + WebSocket
    chainbook account create NAME | list
    chainbook apikey  create --account NAME_OR_ID [--perms read,trade,withdraw]
                      | list [--account NAME_OR_ID] | revoke KEY
    chainbook fund    --account NAME_OR_ID --asset BTC --amount 1.5 [--external-id ID]
                                     deposit (through the running server if there is one)
    chainbook ticks   [--group GROUP:PORT] [--resend HOST:PORT]  print the hot ticks
    chainbook demo    [--data DIR]   list BTCUSDT, fund two accounts, trade, print events
    chainbook run     [--data DIR]   apply JSON commands from stdin, print JSON events
    chainbook recover [--data DIR]   recover the directory and print what recovery did
    chainbook snapshot [--data DIR]  recover, write a snapshot, exit
    chainbook ledger {run,rebuild,reconcile} --data DIR [--db URL]   the SQL ledger
    chainbook reconcile --data DIR [--db URL]  ledger vs a replay of the journal
    chainbook deposit-address --account NAME   the account's deposit address (HD-derived)
    chainbook withdraw --account NAME --asset A --amount X --address 0x..
    chainbook chain faucet|status              the embedded chain of a running server
    chainbook verify-trade ...                 check a trade's Merkle proof on-chain

Every command goes through the durable command log (group commit, fsync per batch)
before its events are printed; the events of a run are acknowledged by the commit that
follows each input batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable

import msgspec

from chainbook.chain.fundscli import add_chain_commands
from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine.state import state_hash
from chainbook.journal.backend import LogError
from chainbook.journal.recovery import DurableEngine
from chainbook.jsonio import BadCommand, parse_command, render_event
from chainbook.service.cli_commands import DEFAULT_DATA, CliError, add_service_commands

_json = msgspec.json.Encoder()


def _print(seq: int, events: Iterable[object]) -> None:
    out = sys.stdout.buffer
    for ev in events:
        out.write(_json.encode(render_event(seq, ev)))  # type: ignore[arg-type]
        out.write(b"\n")
    out.flush()


def _open(data: str, accept_loss: bool = False) -> DurableEngine:
    try:
        de = DurableEngine(data, accept_loss=accept_loss)
    except LogError as exc:  # locked, damaged: one line, as serve says it
        raise CliError(f"cannot open {data}: {exc}") from None
    r = de.report
    print(f"# recovered {data}: seq {r.last_seq}, snapshot at {r.snapshot_seq}, "
          f"replayed {r.replayed} commands in {r.seconds:.3f} s", file=sys.stderr)
    for m in r.messages:
        print(f"# {m}", file=sys.stderr)
    return de


def demo_commands() -> list[C.Command]:
    """The demo session: a BTC/USDT market, two funded traders, a few orders."""
    spec = SymbolSpec.from_decimal(
        "BTCUSDT", "BTC", "USDT", base_decimals=8, quote_decimals=8,
        tick_size="0.01", lot_size="0.00001", maker_bps=10, taker_bps=20,
        band_bps=1000, breaker_bps=500, breaker_window_ns=1_000_000_000,
        breaker_cooldown_ns=5_000_000_000,
    )
    buy, sell = Side.BUY, Side.SELL
    return [
        C.AddSymbol(spec),
        C.Deposit(1, "USDT", 100_000 * 10**8, "demo-deposit-1"),
        C.Deposit(2, "BTC", 2 * 10**8, "demo-deposit-2"),
        C.PlaceOrder(2, "BTCUSDT", sell, OrderType.LIMIT, qty=50_000, price=6_500_000,
                     client_id="ask-1"),
        C.PlaceOrder(2, "BTCUSDT", sell, OrderType.LIMIT, qty=50_000, price=6_510_000,
                     client_id="ask-2"),
        C.PlaceOrder(1, "BTCUSDT", buy, OrderType.LIMIT, qty=70_000, price=6_510_000,
                     tif=TimeInForce.IOC, client_id="bid-ioc"),
        C.PlaceOrder(1, "BTCUSDT", buy, OrderType.LIMIT, qty=10_000, price=6_400_000,
                     client_id="bid-1"),
        C.AmendOrder(1, "BTCUSDT", client_id="bid-1", new_qty=5_000),
        C.CancelOrder(2, "BTCUSDT", client_id="ask-2"),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    with _open(args.data) as de:
        for cmd in demo_commands():
            seq, events = de.submit(cmd, time.time_ns())
            _print(seq, events)
        durable = de.commit()
        print(f"# durable up to seq {durable}; state hash {state_hash(de.engine)}",
              file=sys.stderr)
        print("# run again: recovery replays the log; the deposits are rejected as "
              "duplicates (idempotent by external id)", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    bad = 0
    with _open(args.data) as de:
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            try:
                cmd = parse_command(line)
            except BadCommand as exc:
                bad += 1
                print(_json.encode({"error": str(exc)}).decode(), flush=True)
                continue
            seq, events = de.submit(cmd, time.time_ns())
            de.commit()  # ack point: durable before its events are shown
            _print(seq, events)
    return 1 if bad else 0


def cmd_recover(args: argparse.Namespace) -> int:
    with _open(args.data, args.accept_data_loss) as de:
        print(_json.encode({"last_seq": de.report.last_seq,
                            "snapshot_seq": de.report.snapshot_seq,
                            "replayed": de.report.replayed,
                            "seconds": round(de.report.seconds, 6),
                            "messages": de.report.messages,
                            "skipped_snapshots": [
                                {"path": p, "why": w} for p, w in de.report.skipped_snapshots],
                            "state_hash": state_hash(de.engine)}).decode())
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    with _open(args.data) as de:
        job = de.snapshot(wait=True)
        print(f"# snapshot written: {job}", file=sys.stderr)
    return 0


def _delegated(argv: list[str]) -> int | None:
    """Run the sub-tools that own their command lines; None if ``argv`` is not one."""
    if not argv:
        return None
    head, rest = argv[0], argv[1:]
    if head in ("ledger", "reconcile"):
        from chainbook.ledger.cli import main as ledger_main

        return ledger_main(rest if head == "ledger" else ["reconcile", *rest])
    if head == "verify-trade":
        from chainbook.chain.cli import main as chain_main

        return chain_main(["verify-trade", *rest])
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chainbook`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    delegated = _delegated(argv)
    if delegated is not None:
        return delegated
    p = argparse.ArgumentParser(prog="chainbook", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    for name, fn in (("demo", cmd_demo), ("run", cmd_run), ("recover", cmd_recover),
                     ("snapshot", cmd_snapshot)):
        sp = sub.add_parser(name)
        sp.add_argument("--data", default=DEFAULT_DATA, help="data directory")
        if name == "recover":
            sp.add_argument("--accept-data-loss", action="store_true",
                            help="recover even though acknowledged commands are damaged")
        sp.set_defaults(fn=fn)
    add_service_commands(sub)
    add_chain_commands(sub)  # deposit-address, withdraw, chain faucet|status
    args = p.parse_args(argv)
    try:
        result: int = args.fn(args)
    except CliError as exc:
        print(f"chainbook: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
