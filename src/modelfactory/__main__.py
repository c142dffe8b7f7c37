"""``python -m modelfactory``: the same as the ``modelfactory`` command."""

import sys

from modelfactory.cli import main

sys.exit(main())
