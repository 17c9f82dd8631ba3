"""AutoML Orchestra: AutoML pipelines from atomic, persisted, re-executable steps over REST."""

__version__ = "0.1.0"
