"""The WebSocket API at ``/ws-api/v3``: user-data subscriptions by signature (spec §7.1).

Requests are ``{"id", "method", "params"}``; replies echo ``id`` unchanged:
``{"id", "status": 200, "result", "rateLimits": []}`` or
``{"id", "status": 400|401, "error": {"code", "msg"}}``. Methods: ``ping``, ``time``,
``userDataStream.subscribe.signature``, ``userDataStream.unsubscribe`` and
``session.subscriptions``. After a subscription the account's events arrive on the same
connection as ``{"subscriptionId": N, "event": {...}}`` (the ``Hub`` frames them).

``ApiSession.on_text`` decides synchronously; the socket I/O is in ``gateway.ws``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msgspec

from chainbook.gateway.context import Keys
from chainbook.gateway.hub import Conn, Grant, Hub

DEFAULT_RECV_WINDOW = 5000  # ms
MAX_RECV_WINDOW = 60000  # ms
FUTURE_SLACK = 1000  # ms a timestamp may be ahead of the server clock
MAX_USER_SUBS = 1000  # per connection, as Binance
MAX_FRAME = 64 * 1024  # longest request parsed, in characters


class ApiError(Exception):
    """A request that fails with a Binance status, code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _missing(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                "or malformed.")


BAD_KEY_FORMAT = ApiError(401, -2014, "API-key format invalid.")
BAD_KEY = ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
BAD_SIGNATURE = ApiError(400, -1022, "Signature for this request is not valid.")
STALE = ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
BIG_WINDOW = ApiError(400, -1131, "recvWindow must be less than 60000.")
UNSUPPORTED = ApiError(400, -1020, "This operation is not supported.")


def _int_param(params: dict[str, Any], name: str) -> int | None:
    """An integer parameter (JSON number or digit string), None if absent; else -1102."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _missing(name)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _missing(name)


def _text(value: Any) -> str:
    """A parameter value as it appears in the signed ``k=v`` payload."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def signed_payload(params: dict[str, Any]) -> str:
    """``k=v&k=v`` over every parameter but ``signature``, sorted by key (ccxt's form)."""
    return "&".join(f"{k}={_text(v)}" for k, v in sorted(params.items()) if k != "signature")


def _payloads(params: dict[str, Any]) -> set[str]:
    """The signed strings clients build: raw (ccxt) and URL-encoded (python-binance's
    ``urlencode``); they differ only for values with reserved characters."""
    items = sorted((k, v) for k, v in params.items() if k != "signature")
    return {signed_payload(params), urlencode(items)}


def authenticate(params: dict[str, Any], keys: Keys, now_ms: int) -> int:
    """Check a signed ws-api request; return its account or raise ApiError.

    Accepts ``serverTime - recvWindow <= timestamp <= serverTime + 1000`` as REST does."""
    api_key = params.get("apiKey")
    if not isinstance(api_key, str) or not api_key:
        raise BAD_KEY_FORMAT
    timestamp = _int_param(params, "timestamp")
    if timestamp is None:
        raise _missing("timestamp")
    signature = params.get("signature")
    if not isinstance(signature, str) or not signature:
        raise _missing("signature")
    info = keys.get_key(api_key)
    if info is None:
        raise BAD_KEY
    window = _int_param(params, "recvWindow")
    window = DEFAULT_RECV_WINDOW if window is None else window
    if window > MAX_RECV_WINDOW:
        raise BIG_WINDOW
    if window <= 0:
        raise _missing("recvWindow")
    if not now_ms - window <= timestamp <= now_ms + FUTURE_SLACK:
        raise STALE
    secret = info.secret.encode()
    if not any(hmac.compare_digest(hmac.new(secret, p.encode(), hashlib.sha256).hexdigest(),
                                   signature.lower()) for p in _payloads(params)):
        raise BAD_SIGNATURE
    if not key_reads_for(keys, info.account)(api_key):
        raise BAD_KEY
    return info.account


def key_reads_for(keys: Keys, account: int) -> Callable[[str], bool]:
    """``active(api_key)``: the key is still one ``authenticate`` would accept for
    ``account``'s user data (not revoked, the account's, with ``read``)."""
    def active(api_key: str) -> bool:
        info = keys.get_key(api_key)
        return info is not None and info.account == account and "read" in info.perms
    return active


class ApiSession:
    """State of one ``/ws-api/v3`` connection: its ``Conn`` and user subscriptions."""

    def __init__(self, hub: Hub, conn: Conn, keys: Keys, clock_ms: Callable[[], int]) -> None:
        self.hub = hub
        self.conn = conn
        self.keys = keys
        self.clock_ms = clock_ms
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": lambda _: {},
            "time": lambda _: {"serverTime": self.clock_ms()},
            "userDataStream.subscribe.signature": self.subscribe_signature,
            "userDataStream.unsubscribe": self.unsubscribe,
            "session.subscriptions": self.subscriptions,
        }

    def on_text(self, text: str) -> None:
        """Handle one request frame; queue its reply (then any events it starts)."""
        rid: Any = None
        try:
            if len(text) > MAX_FRAME:
                raise ApiError(400, -1100, "Malformed request: message too long.")
            try:
                request = msgspec.json.decode(text)
            except msgspec.DecodeError:
                raise ApiError(400, -1100, "Malformed request: invalid JSON.") from None
            if not isinstance(request, dict):
                raise ApiError(400, -1100, "Malformed request: expected a JSON object.")
            rid = request.get("id")
            params = request.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ApiError(400, -1100, "Malformed request: 'params' must be an object.")
            method = request.get("method")
            handler = self.methods.get(method) if isinstance(method, str) else None
            if handler is None:
                raise UNSUPPORTED
            result = handler(params)
        except ApiError as err:
            self.hub.reply(self.conn, {"id": rid, "status": err.status,
                                       "error": {"code": err.code, "msg": err.msg}})
            return
        self.hub.reply(self.conn, {"id": rid, "status": 200, "result": result,
                                   "rateLimits": []})

    def subscribe_signature(self, params: dict[str, Any]) -> dict[str, Any]:
        """``userDataStream.subscribe.signature``: start (or reuse) the account's route."""
        account = authenticate(params, self.keys, self.clock_ms())
        for sub_id, acct in self.conn.user_subs.items():
            if acct == account and sub_id is not None:
                return {"subscriptionId": sub_id}  # one subscription per account and socket
        if len(self.conn.user_subs) >= MAX_USER_SUBS:
            raise ApiError(400, -1100, f"Too many subscriptions (max {MAX_USER_SUBS}).")
        # Registered before the reply is queued, but both happen before the event loop
        # can run a publisher, so the reply is always the first frame of the subscription.
        active, api_key = key_reads_for(self.keys, account), str(params["apiKey"])
        grant = Grant(lambda: active(api_key))  # ends when the key is revoked
        sub_id = self.hub.subscribe_user(self.conn, account, wrapped=True, grant=grant)
        return {"subscriptionId": sub_id}

    def unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        """``userDataStream.unsubscribe``: one subscription, or all without an id."""
        if params.get("subscriptionId") is None:
            for each in [s for s in self.conn.user_subs if s is not None]:
                self.hub.unsubscribe_user(self.conn, each)
            return {}
        sub_id = _int_param(params, "subscriptionId")
        if sub_id is None:
            raise _missing("subscriptionId")
        if not self.hub.unsubscribe_user(self.conn, sub_id):
            raise ApiError(400, -1100, f"Subscription {sub_id} does not exist.")
        return {}

    def subscriptions(self, _: dict[str, Any]) -> list[dict[str, int]]:
        """``session.subscriptions``: the active subscription ids."""
        return [{"subscriptionId": s} for s in sorted(s for s in self.conn.user_subs
                                                      if s is not None)]
