"""Human JSON for commands and events at the command line (an edge: names, not tags).

A command is an object ``{"cmd": "PlaceOrder", "account": 1, "side": "BUY", ...}``:
field names as in ``chainbook.domain.commands``, enum fields by name or number.  Events
render the same way with an ``"event"`` key.  The core never sees this format.
"""

from __future__ import annotations

import typing
from enum import IntEnum
from typing import Any

import msgspec

from chainbook.domain import commands as C
from chainbook.domain import events as E
from chainbook.domain.instruments import SymbolSpec

COMMANDS: dict[str, type[C.Command]] = {
    cls.__name__: cls for cls in typing.get_args(C.AnyCommand)
}


class BadCommand(ValueError):
    """The JSON does not describe a valid command."""


def _enum_of(tp: Any) -> type[IntEnum] | None:
    for t in (tp, *typing.get_args(tp)):
        if isinstance(t, type) and issubclass(t, IntEnum):
            return t
    return None


def _convert(cls: type[msgspec.Struct], raw: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in msgspec.structs.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise BadCommand(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    args: dict[str, Any] = {}
    for name, value in raw.items():
        enum = _enum_of(hints[name])
        if enum is not None and isinstance(value, str):
            try:
                value = enum[value.upper()]
            except KeyError:
                raise BadCommand(f"{name}: {value!r} is not one of "
                                 f"{[m.name for m in enum]}") from None
        elif hints[name] is SymbolSpec and isinstance(value, dict):
            value = _convert(SymbolSpec, value)
        args[name] = value
    try:
        obj = cls(**args)
        # validate types by a round trip through msgspec's strict decoder
        return msgspec.msgpack.decode(msgspec.msgpack.encode(obj), type=cls)
    except (TypeError, msgspec.ValidationError) as exc:
        raise BadCommand(f"{cls.__name__}: {exc}") from None


def parse_command(line: str | bytes) -> C.Command:
    """Parse one JSON command; raise BadCommand with a clear message."""
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise BadCommand(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or "cmd" not in raw:
        raise BadCommand('expected an object with a "cmd" key')
    cls = COMMANDS.get(raw.pop("cmd"))
    if cls is None:
        raise BadCommand(f"unknown cmd; one of {sorted(COMMANDS)}")
    result: C.Command = _convert(cls, raw)
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, msgspec.Struct):
        return {f: _plain(getattr(value, f)) for f in value.__struct_fields__}
    return value


def render_event(seq: int, event: E.Event) -> dict[str, Any]:
    """A JSON-ready dict for one event, enum fields by name."""
    out: dict[str, Any] = {"seq": seq, "event": type(event).__name__}
    hints = typing.get_type_hints(type(event))
    for f in event.__struct_fields__:
        v = getattr(event, f)
        if f == "side" or f == "taker_side":
            v = "BUY" if v == 0 else "SELL"
        elif _enum_of(hints[f]) is not None and isinstance(v, int) and v is not None:
            v = _enum_of(hints[f])(v).name  # type: ignore[misc]
        out[f] = _plain(v)
    return out
