"""Start the sync server: ``python app.py --help``."""

import sys

from sync.cli import main

if __name__ == "__main__":
    sys.exit(main())
