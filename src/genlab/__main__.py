"""`python -m genlab` runs the CLI (also what torchrun launches: `torchrun ... -m genlab train ...`)."""

import sys

from genlab.cli import main

sys.exit(main())
