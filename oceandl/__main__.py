"""``python -m oceandl``: the ``oceandl`` command, where the console script is not on PATH
(a virtual environment that is not activated, a job script that names its interpreter)."""
import sys

from oceandl.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
