"""`python -m bench`: see `bench.suite`."""

import sys

from bench.suite import main

sys.exit(main())
