"""``python -m gradtrack ...`` is the ``gradtrack`` command."""
import sys

from gradtrack.cli import main

sys.exit(main())
