"""The ``autogluon`` tool: AutoGluon's ``TabularPredictor``."""
