"""``python -m lbp_motion.cli``: the ``lbp`` command without its console script."""

import sys

from lbp_motion.cli import main

sys.exit(main())
