"""The step error: a failure whose message is the whole story for the user."""

from __future__ import annotations


class StepError(Exception):
    """A failure whose message is the whole story for the user (no traceback needed to understand it)."""
