"""What every engine adapter shares: the contract (``base``), value and table I/O (``values``, ``tables``),
allow-listed reflection calls (``calls``), bounded child processes (``bounded``), models of other
environments (``foreign``), the AutoML template and the stored-model base (``automl``, ``model``), and which
request model a step is read with (``requests``)."""
