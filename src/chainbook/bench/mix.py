"""Seeded command streams for the engine benchmark, engine-neutral and integers only.

A stream is generated once, by simulating it on the baseline book (so cancels and moves
always target an order that is really resting, and the generator knows which commands
trade), then converted per engine before anything is timed.  Each command is a tuple
``(op, order_id, side, price, qty, account)``:

* ``GTC``/``IOC``: a new limit order; ``order_id`` counts 1, 2, 3... over all orders
  (prefill included), which is also the id chainbook assigns when nothing is rejected;
* ``CANCEL``: cancel resting order ``order_id`` (``price``/``qty`` = where it rests / its
  open quantity, for information);
* ``MOVE``: change the price of resting order ``order_id`` to ``price`` keeping its open
  quantity ``qty``; it loses time priority and may trade (an amend of the price).

Accounts: buy orders come from accounts 1..50, sell orders from 51..100, so a taker never
meets its own account and self-trade prevention cannot change any fill on any engine.

Mixes:

* ``exchange-core``: 9% GTC, 3% IOC, 6% cancel, 82% move, ~1,000 resting orders on
  ~750 price levels, ~5.3% of commands trade.  A slowly drifting mid (random walk, one
  tick every ~200 commands); non-crossing prices are ``mid -/+ (1 + U[0, 820))``,
  clamped inside the opposite best (a move re-quotes the order that way, always to a
  new price); 5% of GTCs and 2.4% of moves are priced 0-1 ticks through the opposite
  best, both scaled by ``(resting / 1,000) ** 4`` (capped at 4x), which holds the book
  near 1,000 orders; IOCs (1-10 lots) cross by 0-1 ticks.  Why ~5.3% and not 6%: at a
  steady book size the 9% GTCs minus 6% cancels leave 3% of commands whose trades may
  use up an order, and every trade by a GTC or a move fully fills at least one order
  (the maker or itself), so crossing GTCs + moves can be at most ~3% and IOCs
  (3%) must almost never fill a maker completely: 6% is the ceiling, not reachable.
* ``simple``: 50% GTC, 10% IOC, 40% cancel, no moves; 10% of GTCs cross, IOCs of 1-100
  lots cross by 0-1 ticks, cancels hit random resting orders (~450 orders on ~330
  levels, ~13% of commands trade).  A plain place/cancel workload without amends.

A prefill of non-crossing GTC orders (1,000 for exchange-core, 500 for simple) builds
the book first; it is applied before timing, like the deposits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from chainbook.bench.peers import BaselineBook

GTC = 0
IOC = 1
CANCEL = 2
MOVE = 3
OP_NAMES = ("gtc", "ioc", "cancel", "move")

BUY = 0
SELL = 1
BUYERS = range(1, 51)
SELLERS = range(51, 101)
ACCOUNTS = range(1, 101)

START_MID = 100_000
MIXES = ("exchange-core", "simple")

Cmd = tuple[int, int, int, int, int, int]


@dataclass
class MixParams:
    """Knobs of one mix (percentages of commands, in whole points)."""

    gtc: int
    ioc: int
    cancel: int
    move: int
    prefill: int
    target_orders: int
    width: int  # non-crossing prices fall in mid -/+ (1 + U[0, width))
    gtc_cross_pct: float  # share of GTCs priced through the opposite best
    move_cross_pct: float  # share of moves priced through the opposite best
    ioc_qty_max: int  # IOCs are small: most take part of the best order, not all of it
    qty_max: int = 100


PARAMS = {
    "exchange-core": MixParams(gtc=9, ioc=3, cancel=6, move=82, prefill=1000,
                               target_orders=1000, width=820, gtc_cross_pct=5.0,
                               move_cross_pct=2.4, ioc_qty_max=10),
    "simple": MixParams(gtc=50, ioc=10, cancel=40, move=0, prefill=500,
                        target_orders=500, width=400, gtc_cross_pct=10.0,
                        move_cross_pct=0.0, ioc_qty_max=100),
}


@dataclass
class Stream:
    """A generated stream: prefill (untimed) + commands (timed) + what the generator saw."""

    mix: str
    seed: int
    prefill: list[Cmd]
    commands: list[Cmd]
    traded: bytearray  # traded[i] == 1 if commands[i] trades
    stats: dict[str, object] = field(default_factory=dict)


class _Gen:
    """Generator state: rng, drifting mid, the simulated book and live order ids."""

    def __init__(self, params: MixParams, seed: int) -> None:
        self.p = params
        self.rng = random.Random(seed)
        self.book = BaselineBook()
        self.mid = START_MID
        self.next_id = 1
        self.live: list[int] = []  # may hold ids already filled: checked lazily
        self.account: dict[int, int] = {}

    def best(self, side: int) -> int | None:
        keys = self.book.keys[side]
        if not keys:
            return None
        return keys[-1] if side == BUY else -keys[-1]

    def passive_price(self, side: int) -> int:
        """A price that does not cross: around the mid, inside the opposite best."""
        d = 1 + self.rng.randrange(self.p.width)
        opp = self.best(1 - side)
        if side == BUY:
            price = self.mid - d
            return price if opp is None or price < opp else opp - 1
        price = self.mid + d
        return price if opp is None or price > opp else opp + 1

    def crossing_price(self, side: int, through: int) -> int | None:
        """A price ``0..through-1`` ticks through the opposite best, None if it is empty."""
        opp = self.best(1 - side)
        if opp is None:
            return None
        k = self.rng.randrange(through)
        return opp + k if side == BUY else opp - k

    def new_order(self, tif: int, side: int, price: int, qty: int) -> Cmd:
        oid = self.next_id
        self.next_id += 1
        pool = BUYERS if side == BUY else SELLERS
        account = pool[self.rng.randrange(len(pool))]
        self.account[oid] = account
        self.book.place(oid, side, price, qty, tif == IOC)
        if tif == GTC and oid in self.book.orders:
            self.live.append(oid)
        return (tif, oid, side, price, qty, account)

    def pick_live(self) -> int | None:
        """A random resting order id (dropping ids that were filled meanwhile)."""
        live = self.live
        orders = self.book.orders
        while live:
            i = self.rng.randrange(len(live))
            oid = live[i]
            if oid in orders:
                return oid
            live[i] = live[-1]
            live.pop()
        return None

    def gtc(self, crossing: bool) -> Cmd:
        side = self.rng.randrange(2)
        qty = 1 + self.rng.randrange(self.p.qty_max)
        price = self.crossing_price(side, 2) if crossing else None
        if price is None:
            price = self.passive_price(side)
        return self.new_order(GTC, side, price, qty)

    def ioc(self) -> Cmd:
        side = self.rng.randrange(2)
        price = self.crossing_price(side, 2)
        if price is None:
            price = self.passive_price(side)
        qty = 1 + self.rng.randrange(self.p.ioc_qty_max)
        return self.new_order(IOC, side, price, qty)

    def crossing(self, pct: float) -> bool:
        """Draw whether the next GTC/move crosses; ``pct`` scaled by the book-size feedback."""
        ratio = len(self.book.orders) / self.p.target_orders
        return self.rng.random() * 100 < pct * min(ratio ** 4, 4.0)

    def cancel(self, oid: int) -> Cmd:
        o = self.book.orders[oid]
        cmd = (CANCEL, oid, o.side, o.price, o.left, self.account[oid])
        self.book.cancel(oid)
        return cmd

    def move(self, oid: int, crossing: bool) -> Cmd:
        o = self.book.orders[oid]
        side = o.side
        price = self.crossing_price(side, 2) if crossing else None
        if price is None:
            price = self.passive_price(side)
        if price == o.price:  # a move always changes the price; step away from the spread
            price = price - 1 if side == BUY else price + 1
        cmd = (MOVE, oid, side, price, o.left, self.account[oid])
        self.book.move(oid, price)
        return cmd

    def drift(self) -> None:
        if self.rng.randrange(200) == 0:
            self.mid += 1 if self.rng.randrange(2) else -1


def generate(mix: str, commands: int, seed: int) -> Stream:
    """Generate ``commands`` commands of ``mix`` (plus its prefill) from ``seed``.

    Deterministic: the same (mix, commands, seed) gives the same stream.  O(commands)."""
    if mix not in PARAMS:
        raise ValueError(f"unknown mix {mix!r}; choose one of {', '.join(MIXES)}")
    if commands <= 0:
        raise ValueError("commands must be positive")
    p = PARAMS[mix]
    g = _Gen(p, seed)
    rng = g.rng
    prefill = [g.new_order(GTC, i % 2, g.passive_price(i % 2), 1 + rng.randrange(p.qty_max))
               for i in range(p.prefill)]
    out: list[Cmd] = []
    counts = [0, 0, 0, 0]
    traded = bytearray(commands)
    orders_sum = 0
    levels_sum = 0
    sample_every = 100
    samples = 0
    book = g.book
    gtc_cut = p.gtc
    ioc_cut = gtc_cut + p.ioc
    cancel_cut = ioc_cut + p.cancel
    for i in range(commands):
        g.drift()
        before = book.traded
        r = rng.randrange(100)
        cmd: Cmd | None = None
        if r >= ioc_cut:
            oid = g.pick_live()
            if oid is not None:
                if r < cancel_cut:
                    cmd = g.cancel(oid)
                else:
                    cmd = g.move(oid, g.crossing(p.move_cross_pct))
        elif r >= gtc_cut:
            cmd = g.ioc()
        if cmd is None:  # GTC, or a cancel/move with an empty book
            cmd = g.gtc(g.crossing(p.gtc_cross_pct))
        out.append(cmd)
        counts[cmd[0]] += 1
        if book.traded != before:
            traded[i] = 1
        if i % sample_every == 0:
            samples += 1
            orders_sum += len(book.orders)
            levels_sum += len(book.keys[0]) + len(book.keys[1])
    stats: dict[str, object] = {
        "pct": {OP_NAMES[k]: round(100 * counts[k] / commands, 2) for k in range(4)},
        "trading_pct": round(100 * sum(traded) / commands, 2),
        "avg_resting_orders": round(orders_sum / samples),
        "avg_levels": round(levels_sum / samples),
        "end_resting_orders": len(book.orders),
        "prefill": len(prefill),
        "traded_qty": book.traded,
        "traded_notional": book.notional,
    }
    return Stream(mix, seed, prefill, out, traded, stats)
