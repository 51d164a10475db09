"""``python -m chainbook.ledger ...``: see ``chainbook.ledger.cli``."""

import sys

from chainbook.ledger.cli import main

sys.exit(main())
