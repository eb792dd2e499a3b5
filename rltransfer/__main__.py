"""``python -m rltransfer``: the ``rltransfer`` command, for an environment whose scripts are not on PATH."""

import sys

from rltransfer.cli import main

sys.exit(main())
