"""Frozen entry point of the windowed executable (``MIA Elite.exe``): the window by default."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    import frozen_setup

    frozen_setup.setup("gui")
    from app.cli import main

    sys.exit(main())
