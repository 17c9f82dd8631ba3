"""The ``python`` tool: ``function/python`` and ``builder/python`` run user code in forked workers."""
