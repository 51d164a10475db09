"""Request parameters and HMAC-SHA256 signed requests (specs/binance-compat.md section 2).

Binance signs ``totalParams``: the raw query string immediately followed by the raw body,
with the ``signature=...`` pair removed.  The two clients order parameters differently
(ccxt: insertion order, python-binance: sorted) and put them in different places (ccxt:
query for GET/DELETE, body for POST/PUT; python-binance: body for POST/PUT/DELETE), so the
signature is checked on the bytes as received, never on re-serialised parameters.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from chainbook.gateway import errors
from chainbook.gateway.context import ApiKeyInfo, Keys

MAX_PARAMS = 64
MAX_BYTES = 16_384
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60_000
FUTURE_TOLERANCE_MS = 1000
_KEY_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_SIG_RE = re.compile(r"[0-9a-fA-F]{64}")
_INT_RE = re.compile(r"[0-9]{1,19}")

Params = dict[str, str]


def _pairs(raw: bytes) -> list[tuple[bytes, bytes]]:
    """``key=value`` pairs; a pair without ``=`` or with an empty key is -1100: the
    signature covers query + body as one string, so where the query ends is not signed,
    and such a fragment is what moving that split into a value leaves behind (it would
    otherwise turn ``quantity=0.0015`` into ``quantity=0.001`` plus an ignored ``5``)."""
    out = []
    for part in raw.split(b"&"):
        if not part:
            continue
        k, eq, v = part.partition(b"=")
        if not eq or not k:
            raise errors.malformed_pair()
        out.append((k, v))
    return out


def _decode(raw: bytes) -> str:
    """Percent/plus-decode one form component; undecodable bytes are -1100."""
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise errors.illegal_chars_anywhere() from None


def _decode_plain(raw: bytes) -> str:
    """``_decode`` of a component without ``%`` or ``+``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.illegal_chars_anywhere() from None


def parse_params(query: bytes, body: bytes) -> Params:
    """Merge the query string and a form body into one dict (both, for every method).

    Raise -1101 for a parameter sent twice or too many parameters, -1100 for bytes that
    are not UTF-8 after percent-decoding."""
    if len(query) + len(body) > MAX_BYTES:
        raise errors.too_many_params()
    if b"%" not in query and b"+" not in query and b"%" not in body and b"+" not in body:
        try:  # the usual signed request: nothing to unquote, all UTF-8
            return _plain_params(query.decode("utf-8"), body.decode("utf-8"))
        except UnicodeDecodeError:
            pass  # the general path says which error comes first
    pairs = _pairs(query) + _pairs(body)
    if len(pairs) > MAX_PARAMS:
        raise errors.too_many_params()
    params: Params = {}
    if b"%" in query or b"+" in query or b"%" in body or b"+" in body:
        decode: Callable[[bytes], str] = _decode
    else:
        decode = _decode_plain
    for k, v in pairs:
        key = decode(k)
        if key in params:
            raise errors.duplicate_param()
        params[key] = decode(v)
    return params


def _plain_params(query: str, body: str) -> Params:
    """``parse_params`` of a query and body that decode as UTF-8 and hold no ``%`` or
    ``+``: split once as text (``&`` and ``=`` are ASCII, so the pieces are those of the
    byte split, decoded), with the same checks in the same order; ~4x cheaper."""
    pairs: list[tuple[str, str]] = []
    for raw in (query, body):
        for part in raw.split("&"):
            if not part:
                continue
            k, eq, v = part.partition("=")
            if not eq or not k:
                raise errors.malformed_pair()
            pairs.append((k, v))
    if len(pairs) > MAX_PARAMS:
        raise errors.too_many_params()
    params: Params = {}
    for k, v in pairs:
        if k in params:
            raise errors.duplicate_param()
        params[k] = v
    return params


_SIG = b"signature="


def _strip_signature(raw: bytes) -> tuple[bytes, list[bytes]]:
    """``raw`` without its ``signature=`` pairs (kept byte-exact), and their values."""
    at = raw.find(_SIG)
    if at < 0:
        return raw, []
    if (at == 0 or raw[at - 1] == 0x26) and raw.find(_SIG, at + 1) < 0:
        # one signature pair (the usual case): cut it out rather than split everything
        end = raw.find(b"&", at)
        if end < 0:
            return raw[:at - 1] if at else b"", [raw[at + len(_SIG):]]
        return raw[:at] + raw[end + 1:], [raw[at + len(_SIG):end]]
    return _strip_signature_split(raw)


def _strip_signature_split(raw: bytes) -> tuple[bytes, list[bytes]]:
    """``_strip_signature`` by splitting on every ``&`` (the general case)."""
    kept: list[bytes] = []
    sigs: list[bytes] = []
    for part in raw.split(b"&"):
        if part.startswith(_SIG):
            sigs.append(part[len(_SIG):])
        else:
            kept.append(part)
    return b"&".join(kept), sigs


def signed_payload(query: bytes, body: bytes) -> tuple[bytes, str | None]:
    """Return (totalParams, signature or None) from the raw query and body bytes."""
    q, sq = _strip_signature(query)
    b, sb = _strip_signature(body)
    sigs = sq + sb
    if len(sigs) > 1:
        raise errors.duplicate_param()
    sig = sigs[0].decode("latin-1") if sigs else None
    return q + b, sig


def sign(secret: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 of ``payload`` with ``secret`` (what clients send as signature)."""
    # hmac.digest: OpenSSL's one-shot HMAC, without hmac.new's Python object (~3x faster)
    return hmac.digest(secret.encode(), payload, "sha256").hex()


def api_key(keys: Keys, header: str | None, perm: str) -> ApiKeyInfo:
    """The key named by the X-MBX-APIKEY header, if it exists and has ``perm``.

    Raise -2014 for a missing or malformed header, -2015 for an unknown key or a key
    without the permission."""
    if header is None or not _KEY_RE.fullmatch(header):
        raise errors.bad_api_key_format()
    info = keys.get_key(header)
    if info is None or perm not in info.perms:
        raise errors.rejected_api_key()
    return info


def _int_param(params: Params, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _INT_RE.fullmatch(value):
        raise errors.mandatory(name) if name == "timestamp" else errors.illegal_chars(
            name, "^[0-9]{1,19}$")
    return int(value)


def check_timestamp(params: Params, now_ms: int) -> None:
    """Apply the recvWindow rule: ``now - recvWindow <= timestamp <= now + 1000``.

    Raise -1102 for a missing or malformed timestamp, -1131 for a recvWindow above
    60000, -1021 outside the window."""
    ts = _int_param(params, "timestamp")
    if ts is None:
        raise errors.mandatory("timestamp")
    window = _int_param(params, "recvWindow")
    if window is None:
        window = DEFAULT_RECV_WINDOW
    if window > MAX_RECV_WINDOW:
        raise errors.bad_recv_window()
    if not now_ms - window <= ts <= now_ms + FUTURE_TOLERANCE_MS:
        raise errors.outside_recv_window()


def verify(keys: Keys, header: str | None, query: bytes, body: bytes, params: Params,
           perm: str, clock_ms: Callable[[], int]) -> ApiKeyInfo:
    """Authenticate a SIGNED request; return its key.

    Checks, in order: key header (-2014), key known and allowed ``perm`` (-2015),
    signature present and well-formed (-1102), timestamp rules (-1102/-1131), HMAC over
    the raw bytes (-1022, compared in constant time), recvWindow (-1021)."""
    info = api_key(keys, header, perm)
    payload, sig = signed_payload(query, body)
    if sig is None or not _SIG_RE.fullmatch(sig):
        raise errors.mandatory("signature")
    if params.get("timestamp") is None:
        raise errors.mandatory("timestamp")
    expected = sign(info.secret, payload)
    if not hmac.compare_digest(expected, sig.lower()):
        raise errors.bad_signature()
    check_timestamp(params, clock_ms())
    return info
