"""A computation in a forked child process, stopped at a time limit.

A computation in the worker's own process (a thread of TPOT's, a forest's cross-validation, one of
PyCaret's ``create_model`` calls) cannot be interrupted, and the libraries' own time limits are checked only
between units of work, so a large unit overruns them. A child process can be stopped, so a budget holds.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil


def run_bounded(work: Callable[[], Any], seconds: float, path: Path) -> tuple[bool, Any]:
    """``work()`` in a forked child killed after ``seconds``: (True, its result), or (False, why not).

    The child is forked (no re-import of ``__main__``; it inherits the data) and stays in the worker's
    process group, so the supervisor's limits cover it too. It is not a daemon: joblib runs a daemon's
    parallel loops on one CPU. Stopped, it is killed with every process it started (joblib's workers)."""
    import joblib

    path.unlink(missing_ok=True)
    process = multiprocessing.get_context("fork").Process(target=_child, args=(work, path))
    gc.freeze()  # the child's collections leave the inherited objects (and their shared pages) alone
    process.start()
    process.join(max(seconds, 0.0))
    if process.is_alive():
        _kill_tree(process.pid)
        process.join()
        return False, f"stopped at its time limit ({seconds:.0f} s)"
    if process.exitcode != 0 or not path.exists():
        return False, f"failed (exit code {process.exitcode}); see the step's log"
    try:
        return True, joblib.load(path)
    finally:
        path.unlink(missing_ok=True)


def _child(work: Callable[[], Any], path: Path) -> None:
    import joblib

    partial = path.with_name(path.name + ".partial")
    joblib.dump(work(), partial)
    partial.replace(path)  # a child killed while writing leaves no result that looks whole


def _kill_tree(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.Error):
                process.kill()
