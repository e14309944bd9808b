"""``python -m vqbench.suite.fsq_speed``: run the FSQ speed benchmark from the command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
