"""What every engine adapter shares: the contract (``base``), value and table I/O (``values``, ``tables``),
allow-listed reflection calls (``calls``), bounded child processes (``bounded``), models of other
environments (``foreign``), the declarative AutoML request (``automl``) and parameter readers (``params``)."""
