"""`python -m xlsr_live.cli ...`: the `xlsr-live` command."""

import sys

from . import main

sys.exit(main())
