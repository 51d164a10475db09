"""Build hook: compile the core's hot modules with mypyc (docs/core.md, "Compiled core").

Everything else is in pyproject.toml.  The listed modules are plain, strictly typed
Python (``mypy --strict`` in the test command); mypyc turns them into C extensions that
sit next to the ``.py`` files, which stay the reference and run as they are when
``CHAINBOOK_PURE_PYTHON=1`` is set at build time (or with ``CHAINBOOK_PURE_PYTHON=1`` at
run time, see ``chainbook/__init__.py``).
"""

import os

from setuptools import setup

# the core's hot path: the book, the accounts and the engine (not state.py / the log)
COMPILED = [
    "src/chainbook/book/order.py",
    "src/chainbook/book/book.py",
    "src/chainbook/accounts/balances.py",
    "src/chainbook/accounts/fees.py",
    "src/chainbook/engine/symbol_state.py",
    "src/chainbook/engine/funds.py",
    "src/chainbook/engine/admin.py",
    "src/chainbook/engine/engine.py",
]


def ext_modules() -> list:
    if os.environ.get("CHAINBOOK_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify

    return mypycify(["--strict", *COMPILED], opt_level="3")


setup(ext_modules=ext_modules())
