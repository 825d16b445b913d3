"""`genlab` CLI with the test-only models registered: used by tests that launch processes (torchrun, Ctrl-C)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402,F401
from genlab.cli import main  # noqa: E402

sys.exit(main())
