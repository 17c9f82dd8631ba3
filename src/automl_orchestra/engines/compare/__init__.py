"""The ``compare`` tool: ``automl/compare`` scores every engine's model on one holdout and ranks them."""
