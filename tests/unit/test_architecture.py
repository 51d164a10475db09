"""The pure core (domain, book, accounts, engine) imports no I/O, clock, randomness or shell."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chainbook

PKG = Path(chainbook.__file__).parent
CORE = ("domain", "book", "accounts", "engine")
FORBIDDEN_STDLIB = {
    "asyncio", "socket", "time", "random", "os", "logging", "threading", "sqlite3",
    "subprocess", "datetime", "secrets", "multiprocessing", "selectors", "signal",
}
FORBIDDEN_THIRD_PARTY = {"web3", "sqlalchemy", "starlette", "fastapi", "uvicorn", "nats",
                         "redis", "asyncpg", "eth_tester", "prometheus_client"}
ALLOWED_CHAINBOOK = {f"chainbook.{p}" for p in CORE}


def _core_files() -> list[Path]:
    files = sorted(f for p in CORE for f in (PKG / p).rglob("*.py"))
    assert len(files) >= 10, "the core packages were not found"
    return files


def _imports(source: str, pkg: str) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``source`` of package ``pkg``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                if node.module:
                    out.append((node.lineno, f"{base}.{node.module}"))
                else:
                    out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module or ""))
                if node.module == "chainbook":
                    out += [(node.lineno, f"chainbook.{a.name}") for a in node.names]
    return out


def _violations(source: str, pkg: str) -> list[str]:
    bad = []
    for line, mod in _imports(source, pkg):
        top = mod.split(".")[0]
        if top in FORBIDDEN_STDLIB or top in FORBIDDEN_THIRD_PARTY:
            bad.append(f"line {line} imports {mod}")
        elif top == "chainbook" and mod != "chainbook":
            if ".".join(mod.split(".")[:2]) not in ALLOWED_CHAINBOOK:
                bad.append(f"line {line} imports shell package {mod}")
    return bad


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_core_module_imports_only_pure_things(path):
    assert _violations(path.read_text(), _package_of(path)) == []


def test_the_checker_catches_what_it_should():
    src = ("import os\nfrom time import monotonic\nimport asyncio.tasks\n"
           "from chainbook.journal import log\nfrom ..gateway import app\n"
           "from chainbook import marketdata\n"
           "from chainbook.domain.enums import Side\nfrom . import funds\nimport msgspec\n"
           "def f():\n    import random\n")
    found = _violations(src, "chainbook.engine")
    assert [v.split(" imports ")[1] for v in found] == [
        "os", "time", "asyncio.tasks", "shell package chainbook.journal",
        "shell package chainbook.gateway", "shell package chainbook.marketdata", "random",
    ]
