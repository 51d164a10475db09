"""``python -m chainbook`` is the ``chainbook`` command."""

import sys

from chainbook.cli import main

sys.exit(main())
