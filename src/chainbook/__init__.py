"""chainbook: a crypto spot exchange core with off-chain matching and on-chain settlement."""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("CHAINBOOK_PURE_PYTHON") == "1":  # run the sources, not the compiled core
    from chainbook import _pure

    _pure.install()
