"""``python -m reaperlab``: the console command without its script."""

import sys

from reaperlab.cli import main

sys.exit(main())
