"""``python -m doq``: the same as the ``doq`` command."""

import sys

from doq.cli import main

sys.exit(main())
