"""``python -m routing.vp serve ...``: the same as ``listning platform serve ...``."""

from __future__ import annotations

import sys

from routing.vp.cli import main

if __name__ == "__main__":
    sys.exit(main())
