"""``python -m deepwise ...``: the ``deepwise`` command (``deepwise.cli``) for environments where the
console script is not on PATH (a virtual environment not activated, a notebook's ``!python -m``)."""

import sys

from deepwise.cli import main

if __name__ == "__main__":
    sys.exit(main())
