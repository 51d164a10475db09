"""Request-weight and order-rate limits, like Binance's (fixed windows, in process).

* Request weight per client IP per minute (``X-MBX-USED-WEIGHT-1M`` on every response);
  over the limit -> HTTP 429, -1003, ``Retry-After`` = seconds to the next minute.
* An IP that sends ``ban_after`` more requests while limited is banned for ``ban_ms``:
  HTTP 418, -1003 ``Way too many requests; IP banned until <ms>.``.
* New orders per account per 10 s and per day (``X-MBX-ORDER-COUNT-10S``/``-1D`` on
  order responses); over -> HTTP 429, -1015.  Only orders the core accepted count
  (a refused one does not, as on Binance).
* WebSocket connections opened per IP per 5 minutes (Binance: 300); over, or while the
  IP is banned, the handshake is refused (HTTP 403).

Windows are aligned on the clock (minute, 10 s, UTC day) as on Binance.  State is kept in
memory per process; entries of past windows are dropped when the tables grow.
"""

from __future__ import annotations

from collections.abc import Callable

from chainbook.gateway import errors

MINUTE_MS = 60_000
FIVE_MIN_MS = 300_000
TEN_S_MS = 10_000
DAY_MS = 86_400_000
_PRUNE_AT = 10_000  # table size that triggers dropping entries of past windows


class RateLimiter:
    """Counts request weight per IP and new orders per account; see the module docstring."""

    def __init__(self, clock_ms: Callable[[], int], weight_per_minute: int = 6000,
                 orders_per_10s: int = 100, orders_per_day: int = 200_000,
                 ban_after: int = 20, ban_ms: int = 120_000,
                 ws_connections_per_5m: int = 300) -> None:
        self.clock_ms = clock_ms
        self.weight_per_minute = weight_per_minute
        self.orders_per_10s = orders_per_10s
        self.orders_per_day = orders_per_day
        self.ban_after = ban_after
        self.ban_ms = ban_ms
        self._weight: dict[str, list[int]] = {}  # ip -> [minute, used, refused]
        self._banned: dict[str, int] = {}  # ip -> banned until (ms)
        self._orders: dict[int, list[int]] = {}  # account -> [10s window, n, day, n]
        self.ws_connections_per_5m = ws_connections_per_5m
        self._ws: dict[str, list[int]] = {}  # ip -> [5-minute window, connections]

    def used_weight(self, ip: str) -> int:
        """Weight ``ip`` has used in the current minute."""
        cell = self._weight.get(ip)
        return cell[1] if cell is not None and cell[0] == self.clock_ms() // MINUTE_MS else 0

    def request(self, ip: str, weight: int) -> int:
        """Charge ``weight`` to ``ip``; return the weight used this minute.

        Raise ApiError 418 while banned, 429 when the charge would pass the limit (the
        refused request is not charged but counts towards a ban)."""
        now = self.clock_ms()
        until = self._banned.get(ip)
        if until is not None:
            if now < until:
                err = errors.ip_banned(until)
                err.headers["X-MBX-USED-WEIGHT-1M"] = str(self.used_weight(ip))
                raise self._with_retry(err, until - now)
            del self._banned[ip]
        minute = now // MINUTE_MS
        cell = self._weight.get(ip)
        if cell is None or cell[0] != minute:
            if len(self._weight) >= _PRUNE_AT:
                self._prune(minute)
            cell = self._weight[ip] = [minute, 0, 0]
        if cell[1] + weight > self.weight_per_minute:
            cell[2] += 1
            if cell[2] > self.ban_after:
                until = now + self.ban_ms
                self._banned[ip] = until
                err = errors.ip_banned(until)
                err.headers["X-MBX-USED-WEIGHT-1M"] = str(cell[1])
                raise self._with_retry(err, self.ban_ms)
            err = errors.too_many_requests(ip, self.weight_per_minute)
            err.headers["X-MBX-USED-WEIGHT-1M"] = str(cell[1])
            raise self._with_retry(err, (minute + 1) * MINUTE_MS - now)
        cell[1] += weight
        return cell[1]

    def ws_connect(self, ip: str) -> bool:
        """Count a WebSocket connection from ``ip``; False (not counted) over the limit
        or while ``ip`` is banned."""
        now = self.clock_ms()
        until = self._banned.get(ip)
        if until is not None and now < until:
            return False
        window = now // FIVE_MIN_MS
        cell = self._ws.get(ip)
        if cell is None or cell[0] != window:
            if len(self._ws) >= _PRUNE_AT:
                self._ws = {k: c for k, c in self._ws.items() if c[0] == window}
            cell = self._ws[ip] = [window, 0]
        if cell[1] >= self.ws_connections_per_5m:
            return False
        cell[1] += 1
        return True

    def order(self, account: int) -> tuple[int, int]:
        """``order_check`` then ``order_placed``: count one new order of ``account``."""
        self.order_check(account)
        return self.order_placed(account)

    def order_check(self, account: int) -> tuple[int, int]:
        """Before an order is placed: raise ApiError 429 / -1015 if either limit is
        reached; else return the counts (10 s, today) without counting it.  Only orders
        the core accepted count (``order_placed``), as on Binance ("every successful
        request to place an order adds to the unfilled order count"); orders of one
        account in flight at the same moment may pass the check together."""
        cell = self._order_cell(account)
        now = self.clock_ms()
        ten, day = now // TEN_S_MS, now // DAY_MS
        if cell[1] >= self.orders_per_10s:
            raise self._counted(self._with_retry(
                errors.too_many_orders(self.orders_per_10s, "TEN_SECONDS"),
                (ten + 1) * TEN_S_MS - now), cell)
        if cell[3] >= self.orders_per_day:
            raise self._counted(self._with_retry(
                errors.too_many_orders(self.orders_per_day, "DAY"),
                (day + 1) * DAY_MS - now), cell)
        return cell[1], cell[3]

    def order_placed(self, account: int) -> tuple[int, int]:
        """Count one order of ``account`` the core accepted; return the new counts."""
        cell = self._order_cell(account)
        cell[1] += 1
        cell[3] += 1
        return cell[1], cell[3]

    def _order_cell(self, account: int) -> list[int]:
        """``account``'s [10 s window, count, day, count], moved to the current windows."""
        now = self.clock_ms()
        ten, day = now // TEN_S_MS, now // DAY_MS
        cell = self._orders.get(account)
        if cell is None:
            if len(self._orders) >= _PRUNE_AT:
                self._orders = {a: c for a, c in self._orders.items() if c[2] == day}
            cell = self._orders[account] = [ten, 0, day, 0]
        if cell[0] != ten:
            cell[0], cell[1] = ten, 0
        if cell[2] != day:
            cell[2], cell[3] = day, 0
        return cell

    def rate_limits(self) -> list[dict[str, object]]:
        """The ``rateLimits`` array of exchangeInfo."""
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": self.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": self.orders_per_day},
        ]

    @staticmethod
    def _counted(err: errors.ApiError, cell: list[int]) -> errors.ApiError:
        """The order counts (as on a successful order) on a refused one too."""
        err.headers["X-MBX-ORDER-COUNT-10S"] = str(cell[1])
        err.headers["X-MBX-ORDER-COUNT-1D"] = str(cell[3])
        return err

    @staticmethod
    def _with_retry(err: errors.ApiError, wait_ms: int) -> errors.ApiError:
        err.headers["Retry-After"] = str(max(1, -(-wait_ms // 1000)))
        return err

    def _prune(self, minute: int) -> None:
        self._weight = {ip: c for ip, c in self._weight.items() if c[0] == minute}


# --- request weights (Binance's, for the endpoints we serve) ----------------------------

def depth_weight(limit: int) -> int:
    """Weight of GET /api/v3/depth for ``limit`` levels."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ticker_weight(symbols: int | None) -> int:
    """Weight of GET /api/v3/ticker/24hr for one symbol, a list of n, or all (None)."""
    if symbols is None or symbols > 100:
        return 80
    if symbols > 20:
        return 40
    return 2
