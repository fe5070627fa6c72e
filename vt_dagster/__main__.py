"""`python -m vt_dagster ...` is `vt-dagster ...` (works before the console script is on PATH)."""

import sys

from vt_dagster.cli import main

sys.exit(main())
