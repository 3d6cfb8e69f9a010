"""``python -m relaysec`` is the same as the ``relaysec`` command."""

import sys

from relaysec.cli import main

sys.exit(main())
