"""``python -m automl_orchestra`` is the ``orchestra`` command."""

from automl_orchestra.cli import main

main()
