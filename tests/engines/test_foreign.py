"""What a failed scoring in another engine environment reports: the exception, not the traceback's last line
(scikit-learn's feature-name error ends with a list item such as ``- ...``)."""

from __future__ import annotations

from automl_orchestra.engines.core.foreign import _exception_line

SKLEARN_FAILURE = """Traceback (most recent call last):
  File "foreign.py", line 80, in _answer
    values = model.predict_proba(rows)
ValueError: The feature names should match those that were passed during fit.
Feature names unseen at fit time:
- checking
- ...
"""


def test_the_exception_line_and_its_message_are_reported() -> None:
    line = _exception_line(SKLEARN_FAILURE)
    assert line.startswith("ValueError: The feature names should match")
    assert "Feature names unseen at fit time: - checking" in line


def test_output_without_an_exception_gives_its_last_line() -> None:
    assert _exception_line("starting\nkilled by the OOM killer\n") == "killed by the OOM killer"
    assert _exception_line("") == "no output"
