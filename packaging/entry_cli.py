"""Frozen entry point of the console executable (``mia-elite.exe``): every CLI command."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    import frozen_setup

    frozen_setup.setup("cli")
    from app.cli import main

    sys.exit(main())
