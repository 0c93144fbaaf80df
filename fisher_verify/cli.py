"""The ``fisher-verify`` command (public): the console entry point, also ``python -m fisher_verify.cli``."""

import sys

from ._src.cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
