"""`python -m lediflow.cli`: the same as the `lediflow` command."""

import sys

from lediflow.cli import main

sys.exit(main())
