"""The ``flaml`` tool: FLAML's AutoML, sequential or with parallel trials on Ray Tune."""
