"""The ``nas`` tool's steps (``steps``: generate, train, evaluate) and the ``automl/nas`` search driver
(``driver``), over the NAS library ``automl_orchestra.nas``."""
