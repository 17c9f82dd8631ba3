"""``python -m automl_orchestra`` is the ``orchestra`` command."""

import sys

from automl_orchestra.cli import main

sys.exit(main())
