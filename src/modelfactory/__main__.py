"""``python -m modelfactory``: the same as the ``modelfactory`` command."""

import sys

from modelfactory.ops.cli import main

sys.exit(main())
