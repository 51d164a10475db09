"""``python -m chainbook.chain``: see chain/cli.py."""

import sys

from chainbook.chain.cli import main

sys.exit(main())
