"""Entry point of the benchmark harness: ``.venv/bin/python bench/run.py --all``.

Everything lives in the ``rivetbench`` package beside this file; see ``bench/README.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rivetbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
