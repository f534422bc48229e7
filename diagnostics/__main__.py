"""``python -m diagnostics doctor ...`` / ``watch ...``; the logic is in diagnostics.cli."""

import sys

from diagnostics.cli import main

sys.exit(main())
