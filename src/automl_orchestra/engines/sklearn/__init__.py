"""The ``scikitlearn`` tool: scikit-learn estimators by allow-listed reflection."""
