"""The executor boundary: the scheduler hands JSON jobs to an executor and gets JSON results back.

Implementations: ``LocalExecutor`` (warm worker processes on this machine). A distributed executor (Ray)
implements the same four methods; nothing on either side may assume shared memory or a single machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from automl_orchestra.contracts.jobs import JobResult, JobSpec

ProgressCallback = Callable[[str, dict[str, Any]], None]
DoneCallback = Callable[[JobResult], None]


class Executor(Protocol):
    def start(self) -> None:
        """Prepare capacity (e.g. warm workers); must return quickly."""

    def free_slots(self) -> int:
        """How many more jobs ``submit`` accepts now."""

    def submit(self, job: JobSpec, on_progress: ProgressCallback, on_done: DoneCallback) -> None:
        """Run ``job`` asynchronously; ``on_done`` is called exactly once, from any thread."""

    def cancel(self, run_id: str) -> bool:
        """Stop a running job; its ``on_done`` then reports ``cancelled``. False if it is not here."""

    def shutdown(self) -> None:
        """Stop every worker; running jobs end ``failed`` through their ``on_done``."""


def log_prefix(job: JobSpec) -> str:
    """Where a run's captured stdout/stderr are published (beside, not inside, its atomic output)."""
    return logs_beside(job.output_prefix)


def logs_beside(output_prefix: str) -> str:
    """The log prefix of the run whose output goes to ``output_prefix``."""
    return f"{output_prefix}-logs"
