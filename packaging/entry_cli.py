"""Frozen entry point of the console executable (``mia-elite.exe``): every CLI command."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
