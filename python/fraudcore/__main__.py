"""``python -m fraudcore`` is the ``fraudcore`` command."""

import sys

from fraudcore.cli import main

sys.exit(main())
