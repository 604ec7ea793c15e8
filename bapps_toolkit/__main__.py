"""``python -m bapps_toolkit``: the ``bapps`` command line."""
import sys

from .cli.main import main

sys.exit(main())
