"""``python -m usgen_monai``: the ``usgen-monai`` command line, see :py:mod:`usgen_monai.cli`."""

from __future__ import annotations

import sys

from usgen_monai.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
