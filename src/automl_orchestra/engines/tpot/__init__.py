"""The ``tpot`` tool: TPOT by reflection and ``automl/tpot`` (strong baselines, then a bounded TPOT search)."""
