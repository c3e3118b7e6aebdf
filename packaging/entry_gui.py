"""Frozen entry point of the windowed executable (``MIA Elite.exe``): the window by default."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
