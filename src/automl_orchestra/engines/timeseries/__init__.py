"""Time series: ``dataset/timeseries`` (long CSV and UCR ``.ts`` ingest, in ``ingest``) and the ``tsfresh``
tool (feature extraction, selection and imputation with stored feature settings)."""
