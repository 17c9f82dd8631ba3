"""The ``pycaret`` tool: PyCaret experiments, run in the ``pycaret`` engine environment."""
