"""``python -m app``: same as the ``mia-elite`` console script."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
