"""The built-in dataset and transform tools: ``dataset/csv|generic``, ``transform/projection|dataType|split``,
``explore/histogram``."""
