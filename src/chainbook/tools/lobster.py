"""Replay a Nasdaq LOBSTER order stream through the engine and compare it with Nasdaq.

The streams in ``../shared/data/lobster/streams/`` (see that folder's README) are turned
into engine commands as the README prescribes:

* ``add`` -> a GTC LIMIT order from one of ``ACCOUNTS`` funded accounts (chosen by a hash
  of the LOBSTER order id, so a cancel always finds its order); the symbol's default
  self-trade prevention is NONE, so STP never changes what matches;
* ``cancel`` -> ``CancelOrder``; ``cancel_partial`` -> ``AmendOrder`` lowering the
  quantity (keeps time priority), or ``CancelOrder`` if nothing would be left;
* consecutive ``execute`` rows with the same ``ts`` and ``side`` -> one IOC LIMIT order
  from the taker account on the other side, for the summed quantity, limited at the
  worst named price; ``unk`` rows are skipped.

What is compared:

* the book: orderbook row ``k`` is Nasdaq's visible book after message ``k``; it is
  compared with the engine's top ``levels`` levels per side once every stream row with
  ``msg_idx <= k`` is applied (messages with no stream rows, e.g. hidden executions,
  leave the book as it was).  A sweep that spans several messages is one engine command,
  so the book between its messages is never the engine's own: for those rows the
  expected book is the engine's book after the sweep plus the executions named after
  message ``k`` put back (counted apart as ``mid_sweep``).
* executions: the IOC's fills must hit exactly the named resting orders, compared as a
  multiset of (order id, quantity) summed per order (one order named twice in a sweep
  is one fill in the engine); order does not matter (Nasdaq does not report a sweep's
  fills in FIFO order).

When a sweep hits other orders than Nasdaq named (Nasdaq skipped the queue head: a
fraction of a percent of sweeps after the open), the engine's level totals still agree but the
orders behind them do not, and every later cancel of those orders would make the book
drift.  Unless ``repair`` is off, the replay then puts the engine's orders back where
Nasdaq's are, with ordinary commands (counted in ``repair_commands``): the order Nasdaq
still has takes over the engine order Nasdaq consumed at the same price, other open
quantities are lowered (keeping priority) or re-added (back of the queue).  It does so
only when the engine filled the same quantity at every price as Nasdaq; anything else
is counted as ``unrepairable_sweeps`` and left for the book check to show.

Both rates are also given for after 09:30:15 (the README: the first ~15 s are not
FIFO-clean); a book row counts there by the ts of the last row applied before it.
``chainbook.engine.state.check`` runs every ``check_every`` messages and at the end.

Run: ``python -m chainbook.tools.lobster STREAM [--orderbook FILE] [--levels N]``;
it prints one JSON report.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chainbook.book.book import OrderBook
from chainbook.book.naive import NaiveBook
from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, Stp, TimeInForce
from chainbook.domain.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderExpired,
    OrderRejected,
    Trade,
)
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.engine.state import check

BUY = 0
SELL = 1
OPEN_CLEAN_NS = (9 * 3600 + 30 * 60 + 15) * 10**9  # 09:30:15, ns after midnight
DUMMY_PRICE = 9_999_999_999  # LOBSTER's filler price for an empty level (negated for bids)
ACCOUNTS = 64  # pool of order-owner accounts
TAKER = ACCOUNTS + 1  # the account that sends the execution IOCs
QUOTE = "USD"  # quote asset, in cents (tick = 1 cent, lot = 1 share)
FUNDS_QUOTE = 10**15  # cents deposited per account: more than any account ever reserves
FUNDS_BASE = 10**12  # shares deposited per account
MAX_QTY = 10**9  # shares per order
EXAMPLES = 5  # mismatches kept in the report

# ts, action, order id, side (0 buy / 1 sell), price (cents), qty, msg_idx, tag
Row = tuple[int, str, int, int, int, int, int, str]


class ReplayError(RuntimeError):
    """The stream or the engine did something the replay cannot go on from."""


def read_stream(path: Path) -> list[Row]:
    """Read a stream CSV into tuples (see ``Row``)."""
    sides = {"B": BUY, "S": SELL}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header != ["ts", "action", "order_id", "side", "price_ticks", "qty", "msg_idx",
                      "tag"]:
            raise ReplayError(f"{path}: unexpected header {header}")
        return [(int(ts), action, int(oid), sides[side], int(price), int(qty), int(msg), tag)
                for ts, action, oid, side, price, qty, msg, tag in reader]


def read_orderbook(path: Path) -> list[list[int]]:
    """Read a LOBSTER orderbook CSV: one list of ints per row (AskP1,AskS1,BidP1,BidS1,...)."""
    with open(path, newline="") as f:
        return [[int(x) for x in line] for line in csv.reader(f)]


def book_levels(raw: list[int], levels: int, tick: int
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(bids, asks) of one orderbook row in cents, best first, dummy levels dropped."""
    bids: list[tuple[int, int]] = []
    asks: list[tuple[int, int]] = []
    for i in range(levels):
        ap, asz, bp, bsz = raw[4 * i:4 * i + 4]
        for price, size, out, dummy in ((ap, asz, asks, DUMMY_PRICE),
                                        (bp, bsz, bids, -DUMMY_PRICE)):
            if price == dummy and size == 0:
                continue
            if price % tick or size <= 0:
                raise ReplayError(f"orderbook level ({price}, {size}) is not usable")
            out.append((price // tick, size))
    return bids, asks


def load_meta(stream: Path) -> dict[str, Any]:
    """The stream's ``.meta.json`` (empty if there is none)."""
    meta = stream.with_name(stream.name + ".meta.json")
    return json.loads(meta.read_text()) if meta.exists() else {}


def default_orderbook(stream: Path, meta: dict[str, Any]) -> Path | None:
    """The orderbook file the meta names, looked up in the data folder, or None."""
    name = meta.get("source_orderbook")
    if not name:
        return None
    base = stream.resolve().parent.parent  # .../lobster
    rel = Path(name)
    for cand in (base / rel, base.parent / rel, base / "raw" / rel.name,
                 base / "raw" / "partial" / rel.name):
        if cand.exists():
            return cand
    raise ReplayError(f"orderbook {name} named by the meta of {stream.name} not found")


def account_of(order_id: int) -> int:
    """The account that owns a LOBSTER order: a multiplicative hash into 1..ACCOUNTS."""
    return 1 + (order_id * 2654435761 % 4294967311) % ACCOUNTS


def _book_diff(k: int, ts: int, got: list[list[tuple[int, int]]],
               want: tuple[list[tuple[int, int]], list[tuple[int, int]]]) -> dict[str, Any]:
    """A short description of where a book row differs: the first 3 levels from there."""
    out: dict[str, Any] = {"row": k, "ts": ts}
    for side, name in ((BUY, "bids"), (SELL, "asks")):
        g, w = got[side], want[side]
        i = next((i for i, (a, b) in enumerate(zip(g, w, strict=False)) if a != b),
                 min(len(g), len(w)))
        if g != w:
            out[name] = {"level": i + 1, "engine": g[i:i + 3], "lobster": w[i:i + 3]}
    return out


class Live:
    """An open LOBSTER order as the engine holds it."""

    __slots__ = ("cb", "account", "side", "price", "total", "left")

    def __init__(self, cb: int, account: int, side: int, price: int, total: int,
                 left: int) -> None:
        self.cb = cb  # chainbook order id
        self.account = account
        self.side = side
        self.price = price
        self.total = total  # the engine order's total quantity (filled part included)
        self.left = left  # its open quantity


class Tally:
    """How many checks ran and passed, overall and after 09:30:15."""

    __slots__ = ("total", "ok", "total_open", "ok_open", "examples")

    def __init__(self) -> None:
        self.total = self.ok = self.total_open = self.ok_open = 0
        self.examples: list[dict[str, Any]] = []

    def add(self, ok: bool, ts: int, example: Callable[[], dict[str, Any]]) -> None:
        """Count one check at ``ts``; keep a few failures (``example`` builds the detail)."""
        self.total += 1
        self.ok += ok
        if ts >= OPEN_CLEAN_NS:
            self.total_open += 1
            self.ok_open += ok
        if not ok and len(self.examples) < EXAMPLES:
            self.examples.append(example())

    def report(self) -> dict[str, Any]:
        return {
            "compared": self.total, "matched": self.ok,
            "rate": self.ok / self.total if self.total else None,
            "compared_after_0930_15": self.total_open, "matched_after_0930_15": self.ok_open,
            "rate_after_0930_15": self.ok_open / self.total_open if self.total_open else None,
            "mismatches": self.examples,
        }


class Replay:
    """One stream replayed into a fresh engine; ``run()`` returns the report."""

    def __init__(self, symbol: str, rows: list[Row], expected: Sequence[list[int]] | None,
                 levels: int, tick: int = 100, messages: int | None = None,
                 check_every: int = 5000, repair: bool = True,
                 book_factory: Callable[[], Any] = OrderBook) -> None:
        self.symbol = symbol
        self.rows = [r for r in rows if r[7] != "unk"]
        self.skipped_unk = len(rows) - len(self.rows)
        self.expected = expected
        self.levels = levels
        self.tick = tick
        last_msg = max((r[6] for r in rows), default=-1)
        self.messages = messages if messages is not None else last_msg + 1
        self.check_every = check_every
        self.engine = Engine(book_factory=book_factory)
        self.seq = 0
        self.commands = 0
        self.engine_s = 0.0
        self.repair = repair
        self.live: dict[int, Live] = {}  # LOBSTER id -> its open order in the engine
        self.lob_id: dict[int, int] = {}  # chainbook order id -> LOBSTER id
        self.book = Tally()
        self.mid_sweep = 0
        self.executions = Tally()
        self.counts: Counter[str] = Counter()
        self.invariant_checks = 0
        self.checked_upto = 0  # messages complete at the last _reached call

    # --- engine plumbing -------------------------------------------------------------

    def _apply(self, cmd: C.Command, ts: int) -> list[Event]:
        self.seq += 1
        self.commands += 1
        t0 = time.perf_counter()
        events = self.engine.apply(cmd, self.seq, ts)
        self.engine_s += time.perf_counter() - t0
        return events

    def setup(self) -> None:
        """List the symbol (zero fees, no band, breaker or open-order cap) and fund accounts."""
        spec = SymbolSpec.from_decimal(
            self.symbol, self.symbol, QUOTE, base_decimals=0, quote_decimals=2,
            tick_size="0.01", lot_size="1", max_qty=MAX_QTY, default_stp=Stp.NONE,
        )
        if spec.quote_per_tick_lot != 1 or spec.lot_units != 1:
            raise ReplayError("symbol spec is not 1 cent x 1 share")
        cmds: list[C.Command] = [C.AddSymbol(spec)]
        for a in range(1, TAKER + 1):
            cmds.append(C.Deposit(a, QUOTE, FUNDS_QUOTE, f"lobster:{a}:{QUOTE}"))
            cmds.append(C.Deposit(a, self.symbol, FUNDS_BASE, f"lobster:{a}:{self.symbol}"))
        for cmd in cmds:
            for e in self._apply(cmd, 0):
                if isinstance(e, OrderRejected):
                    raise ReplayError(f"setup command {cmd} rejected: {e.reason.name}")

    def _fills(self, events: list[Event]
               ) -> tuple[Counter[int], Counter[int], dict[int, tuple[int, Live]]]:
        """Apply the trades in ``events`` to the open orders.

        Return lots filled per LOBSTER id, lots filled per price, and each filled
        order's open lots before and its record."""
        hit: Counter[int] = Counter()
        at_price: Counter[int] = Counter()
        before: dict[int, tuple[int, Live]] = {}
        for e in events:
            if isinstance(e, Trade):
                oid = self.lob_id.get(e.maker_order_id, -e.maker_order_id)
                hit[oid] += e.qty
                at_price[e.price] += e.qty
                rec = self.live.get(oid)
                if rec is not None:
                    before.setdefault(oid, (rec.left, rec))
                    rec.left = e.maker_left
                    if not e.maker_left:
                        del self.live[oid]
                        del self.lob_id[e.maker_order_id]
            elif isinstance(e, OrderRejected):
                self.counts["engine_rejects"] += 1
            elif isinstance(e, OrderExpired):
                self.counts["ioc_unfilled_lots"] += e.expired_qty
        return hit, at_price, before

    # --- one stream row each ---------------------------------------------------------

    def _place(self, oid: int, side: int, price: int, qty: int, ts: int) -> None:
        """Rest LOBSTER order ``oid`` as a GTC limit order from its account."""
        if oid in self.live:
            raise ReplayError(f"add of order {oid} which is still open")
        account = account_of(oid)
        events = self._apply(C.PlaceOrder(account, self.symbol, Side(side), OrderType.LIMIT,
                                          qty, price, TimeInForce.GTC), ts)
        first = events[0]
        if not isinstance(first, OrderAccepted):
            raise ReplayError(f"add of order {oid} not accepted: {first}")
        hit, _, _ = self._fills(events)
        if hit:
            self.counts["adds_that_traded"] += 1
        left = qty - sum(hit.values())
        if left:
            self.live[oid] = Live(first.order_id, account, side, price, qty, left)
            self.lob_id[first.order_id] = oid

    def _cancel(self, oid: int, rec: Live, ts: int) -> None:
        del self.live[oid]
        del self.lob_id[rec.cb]
        rec.left = 0
        self._fills(self._apply(C.CancelOrder(rec.account, self.symbol, rec.cb), ts))

    def _resize(self, rec: Live, left: int, ts: int) -> None:
        """Amend an open order to ``left`` open lots (a reduction keeps time priority)."""
        total = rec.total + left - rec.left
        events = self._apply(C.AmendOrder(rec.account, self.symbol, rec.cb, new_qty=total), ts)
        if not any(isinstance(e, OrderAmended) for e in events):
            raise ReplayError(f"amend of order {rec.cb} to {total} failed: {events}")
        rec.total, rec.left = total, left
        self._fills(events)

    def add(self, r: Row) -> None:
        self._place(r[2], r[3], r[4], r[5], r[0])

    def cancel(self, r: Row) -> None:
        rec = self.live.get(r[2])
        if rec is None:
            self.counts["unresolved_rows"] += 1
        else:
            self._cancel(r[2], rec, r[0])

    def cancel_partial(self, r: Row) -> None:
        rec = self.live.get(r[2])
        if rec is None:
            self.counts["unresolved_rows"] += 1
        elif r[5] >= rec.left:
            self.counts["partial_cancels_to_zero"] += 1
            self._cancel(r[2], rec, r[0])
        else:
            self._resize(rec, rec.left - r[5], r[0])

    def execute(self, group: list[Row]) -> None:
        """Send one IOC for a sweep; check that it hit exactly the named orders."""
        ts, side = group[0][0], group[0][3]
        qty = sum(r[5] for r in group)
        limit = min(r[4] for r in group) if side == BUY else max(r[4] for r in group)
        events = self._apply(C.PlaceOrder(TAKER, self.symbol, Side(1 - side), OrderType.LIMIT,
                                          qty, limit, TimeInForce.IOC), ts)
        hit, at_price, before = self._fills(events)
        named: Counter[int] = Counter()
        named_at: Counter[int] = Counter()
        for r in group:
            named[r[2]] += r[5]
            named_at[r[4]] += r[5]
        ok = hit == named
        self.executions.add(ok, ts, lambda: {
            "ts": ts, "msg_idx": [r[6] for r in group],
            "named": sorted(named.items()), "filled": sorted(hit.items()),
        })
        if not ok and self.repair:
            if at_price != named_at:  # the engine traded other quantities per price: show it
                self.counts["unrepairable_sweeps"] += 1
            else:
                self._repair(named, hit, before, ts)

    def _repair(self, named: Counter[int], hit: Counter[int],
                before: dict[int, tuple[int, Live]], ts: int) -> None:
        """Make the sweep's orders what Nasdaq left after it (same totals per price).

        The engine hit the queue head where Nasdaq hit other orders at the same prices,
        so order identities and open quantities differ though every level total agrees.
        An order Nasdaq still has but the engine filled first takes over, at the same
        price, the engine order Nasdaq consumed instead; what still differs is fixed with
        reductions (keep priority), then new orders / increases (back of the queue)."""
        todo: list[tuple[int, Live, int]] = []  # (LOBSTER id, record, Nasdaq's open lots)
        for oid in sorted(named.keys() | hit.keys()):  # ascending id: arrival order
            if oid in before:
                was, rec = before[oid]
            elif oid in self.live:
                rec = self.live[oid]
                was = rec.left
            else:
                self.counts["unrepairable_sweeps"] += 1
                return
            if was < named[oid]:  # Nasdaq executed more than the order had open
                self.counts["unrepairable_sweeps"] += 1
                return
            if rec.left != was - named[oid]:
                todo.append((oid, rec, was - named[oid]))
        self.counts["repaired_sweeps"] += 1
        spare = [(oid, rec) for oid, rec, want in todo if want == 0 and rec.left]
        for i, (oid, rec, want) in enumerate(todo):
            other = next((x for x in spare if x[1].price == rec.price), None)
            if want and not rec.left and other is not None:
                spare.remove(other)  # oid takes over the engine order Nasdaq consumed
                del self.live[other[0]]
                self.live[oid] = other[1]
                self.lob_id[other[1].cb] = oid
                todo[i] = (oid, other[1], want)
                self.counts["repair_takeovers"] += 1
        shrink, grow = [], []
        for oid, rec, want in todo:
            mine = self.live.get(oid) is rec  # else: the engine filled it (or oid moved on)
            if mine and want < rec.left:
                shrink.append((oid, rec, want))
            elif want and (not mine or want > rec.left):
                grow.append((oid, rec, want, mine))
        self.counts["repair_commands"] += len(shrink) + len(grow)
        for oid, rec, want in shrink:
            if want:
                self._resize(rec, want, ts)
            else:
                self._cancel(oid, rec, ts)
        for oid, rec, want, mine in grow:
            if mine:
                self._resize(rec, want, ts)
            else:
                self._place(oid, rec.side, rec.price, want, ts)

    # --- book comparison -------------------------------------------------------------

    def _compare(self, k: int, ts: int, back: dict[int, int] | None = None,
                 back_side: int = BUY) -> None:
        """Compare orderbook row ``k`` with the engine's book (plus ``back`` put back)."""
        if self.expected is None or k >= len(self.expected):
            return
        book = self.engine.symbols[self.symbol].book
        n = self.levels
        got = [book.depth(BUY, n), book.depth(SELL, n)]
        if back:
            merged = dict(book.depth(back_side, n + len(back)))
            for p, q in back.items():
                merged[p] = merged.get(p, 0) + q
            got[back_side] = sorted(merged.items(), reverse=back_side == BUY)[:n]
            self.mid_sweep += 1
        want = book_levels(self.expected[k], n, self.tick)
        self.book.add(got[0] == want[0] and got[1] == want[1], ts,
                      lambda: _book_diff(k, ts, got, want))

    def _reached(self, done: int, upto: int, ts: int) -> None:
        """Messages ``done..upto-1`` are complete: compare them; check invariants."""
        for k in range(max(done, 0), upto):
            self._compare(k, ts)
        if upto // self.check_every > self.checked_upto // self.check_every:
            check(self.engine)
            self.invariant_checks += 1
        self.checked_upto = upto

    def run(self) -> dict[str, Any]:
        """Replay every row; return the report (see ``report``)."""
        t0 = time.perf_counter()
        self.setup()
        rows = self.rows
        n = len(rows)
        if rows and rows[0][6] > 0:  # messages before the first row leave the book empty
            self._reached(0, rows[0][6], rows[0][0])
        i = 0
        handlers = {"add": self.add, "cancel": self.cancel, "cancel_partial": self.cancel_partial}
        while i < n:
            r = rows[i]
            if r[1] == "execute":
                j = i + 1
                while (j < n and rows[j][1] == "execute" and rows[j][0] == r[0]
                       and rows[j][3] == r[3]):
                    j += 1
                self.execute(rows[i:j])
                self._mid_sweep(rows, i, j)
            else:
                handler = handlers.get(r[1])
                if handler is None:
                    raise ReplayError(f"row {i}: unknown action {r[1]!r}")
                handler(r)
                j = i + 1
            nxt = rows[j][6] if j < n else self.messages
            if nxt > rows[j - 1][6]:
                self._reached(rows[j - 1][6], nxt, rows[j - 1][0])
            i = j
        check(self.engine)
        self.invariant_checks += 1
        return self.report(time.perf_counter() - t0)

    def _mid_sweep(self, rows: list[Row], i: int, j: int) -> None:
        """Compare the messages a sweep completes before its last one (see module doc)."""
        for b in range(i, j - 1):
            m, m2 = rows[b][6], rows[b + 1][6]
            if m2 <= m:
                continue
            back: dict[int, int] = {}
            for r in rows[b + 1:j]:
                back[r[4]] = back.get(r[4], 0) + r[5]
            for k in range(max(m, 0), m2):
                self._compare(k, rows[b][0], back, rows[b][3])

    def report(self, wall_s: float) -> dict[str, Any]:
        """The JSON-able report of a finished run."""
        book = self.book.report()
        book["mid_sweep"] = self.mid_sweep
        book["orderbook_rows"] = len(self.expected) if self.expected is not None else 0
        return {
            "symbol": self.symbol, "levels": self.levels,
            "rows": len(self.rows) + self.skipped_unk, "rows_skipped_unk": self.skipped_unk,
            "messages": self.messages,
            "commands": self.commands, "book": book, "executions": self.executions.report(),
            "counts": dict(sorted(self.counts.items())),
            "open_orders_at_end": len(self.live), "invariant_checks": self.invariant_checks,
            "wall_s": round(wall_s, 3),
            "commands_per_s": round(self.commands / wall_s) if wall_s else None,
            "engine_commands_per_s": round(self.commands / self.engine_s)
            if self.engine_s else None,
        }


def replay_stream(stream: Path, orderbook: Path | None = None, levels: int | None = None,
                  check_every: int = 5000, repair: bool = True,
                  naive: bool = False) -> dict[str, Any]:
    """Replay ``stream`` (orderbook and depth from its meta unless given); return the report."""
    t0 = time.perf_counter()
    meta = load_meta(stream)
    if orderbook is None:
        orderbook = default_orderbook(stream, meta)
    expected = read_orderbook(orderbook) if orderbook is not None else None
    depth = len(expected[0]) // 4 if expected else 0
    if levels is None:
        levels = depth
    elif expected is not None and not 0 < levels <= depth:
        raise ReplayError(f"--levels {levels} but {orderbook} has {depth} levels")
    rows = read_stream(stream)
    replay = Replay(stream.name.split("_")[0], rows, expected, levels,
                    tick=int(meta.get("tick", 100)), messages=meta.get("messages"),
                    check_every=check_every, repair=repair,
                    book_factory=NaiveBook if naive else OrderBook)
    load_s = time.perf_counter() - t0
    out = replay.run()
    out = {"stream": stream.name,
           "orderbook": str(orderbook) if orderbook is not None else None,
           "book_impl": "naive" if naive else "fast", "load_s": round(load_s, 3), **out}
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: print the JSON report; exit 1 if any check failed."""
    ap = argparse.ArgumentParser(prog="python -m chainbook.tools.lobster",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("stream", type=Path, help="a streams/*.stream.csv file")
    ap.add_argument("--orderbook", type=Path, help="LOBSTER orderbook CSV (default: meta)")
    ap.add_argument("--levels", type=int, help="levels to compare (default: the file's)")
    ap.add_argument("--check-every", type=int, default=5000,
                    help="run the engine invariant check every K messages")
    ap.add_argument("--no-repair", action="store_true",
                    help="leave the book as the engine matched it after a non-FIFO sweep")
    ap.add_argument("--naive", action="store_true", help="use the naive oracle book")
    args = ap.parse_args(argv)
    if args.check_every <= 0:
        ap.error("--check-every must be positive")
    report = replay_stream(args.stream, args.orderbook, args.levels, args.check_every,
                           not args.no_repair, args.naive)
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    ok = report["book"]["matched"] == report["book"]["compared"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
