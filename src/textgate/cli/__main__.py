"""`python -m textgate.cli`."""

import sys

from textgate.cli.main import main

sys.exit(main())
