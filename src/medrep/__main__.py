"""``python -m medrep …``: the same command line as the ``medrep`` console script."""
import sys

from medrep.cli import main

sys.exit(main())
