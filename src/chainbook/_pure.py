"""``CHAINBOOK_PURE_PYTHON=1``: import chainbook's modules from their ``.py`` sources even
where a compiled (mypyc) extension sits next to them.

The compiled core and its sources must behave identically; this switch is how the
equivalence test (tests/unit/engine/test_engine_compiled.py) runs the sources, and how a
developer can step through the core in a debugger without rebuilding."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from types import ModuleType


class SourceOnlyFinder:
    """A meta path finder for ``chainbook.*`` that only sees ``.py`` files."""

    @classmethod
    def find_spec(cls, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not name.startswith("chainbook.") or not path:
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name)
            if spec is not None:
                return spec
        return None


def install() -> None:
    """Put the source-only finder first (idempotent)."""
    if SourceOnlyFinder not in sys.meta_path:
        sys.meta_path.insert(0, SourceOnlyFinder)


def compiled_core() -> bool:
    """True if the engine in use is the compiled extension."""
    from chainbook.engine import engine

    return not (engine.__file__ or "").endswith(".py")
