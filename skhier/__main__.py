"""Run the ``skhier`` command with ``python -m skhier``."""

import sys

from skhier.cli import main

sys.exit(main())
