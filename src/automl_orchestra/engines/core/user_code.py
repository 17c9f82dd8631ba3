"""Running user code in a worker: a function body with parameters (``function/*``) or a whole pipeline
script that writes files (``builder/*``, the ``python`` and ``pycaret`` tools).

The code runs in a worker process (never in the API process) under the step's time and memory limits; the
server lets only roles allowed to run code create these steps. Inside the worker nothing is sandboxed:
this module's job is a predictable contract, not isolation. Resolved ``parameters`` are the code's globals,
and whatever the code leaves in ``response`` is the step's value.
"""

from __future__ import annotations

import contextlib
import io
import keyword
import linecache
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import CODE_FILES_DIR
from automl_orchestra.contracts.parameters import CodeBody
from automl_orchestra.engines.core.base import StepContext, StepResult
from automl_orchestra.engines.core.downloads import download_bytes
from automl_orchestra.engines.core.values import frame_to_arrow, write_table

MAX_CODE_BYTES = 1_000_000
MAX_COPIED_FILE_BYTES = 512 * 1024 * 1024
MAX_TABLE_PARSE_BYTES = 64 * 1024 * 1024  # pandas' sniffing python parser is slow; bigger files stay files
TEXT_SUFFIXES = ("", ".csv", ".tsv", ".txt", ".tab")
FILES_DIR = CODE_FILES_DIR


def run_builder(ctx: StepContext, preset: dict[str, Any]) -> StepResult:
    """A whole-pipeline script in the step's working directory; the files it writes become artifacts (and
    tables when they parse as such). ``pd``, ``np`` and ``preset`` are pre-imported for the code."""
    import numpy as np
    import pandas as pd

    code = load_code(ctx)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    before = _snapshot(ctx)
    with contextlib.chdir(ctx.work_dir):
        response = run_code(ctx, code, {"pd": pd, "np": np, **preset})
    files, tables, skipped = _collect_files(ctx, before)
    metadata = {**response_metadata(ctx, response), "files": files, "tables": tables}
    if skipped:
        metadata["skipped"] = skipped
    return StepResult(value=response, metadata=metadata)


def load_code(ctx: StepContext) -> str:
    """The step's code: ``code``, or the text at ``codeUrl`` (a host the server lists for code)."""
    request = ctx.request_as(CodeBody)
    code, url = request.code, request.codeUrl
    if url and code:
        raise StepError("give either 'code' or 'codeUrl', not both")
    if url:
        # The worker re-applies the API's code-URL rule (hosts in ORCHESTRA_CODE_URL_HOSTS) at every hop.
        data, _info = download_bytes(url, max_bytes=MAX_CODE_BYTES, code_hosts=ctx.job.policy.code_url_hosts)
        try:
            code = data.decode("utf-8")
        except UnicodeDecodeError:
            raise StepError(f"the code at {url!r} is not UTF-8 text") from None
    if not code or not code.strip():
        raise StepError("parameter 'code' (or 'codeUrl') is required")
    return code


class CodeFile(io.BufferedReader):
    """A ``dataset/generic`` output as code gets it: an open binary file (Learning Orchestra's meaning), that
    is also path-like, so code written for the path it used to be (``open(f)``, ``Path(f)``) keeps working."""

    def __fspath__(self) -> str:
        return str(self.name)


def run_code(ctx: StepContext, code: str, preset: dict[str, Any]) -> Any:
    """Execute ``code`` with ``preset`` and the resolved ``parameters`` as globals; return ``response``.

    A ``dataset/generic`` step referenced in ``parameters`` is an open binary file object (Learning
    Orchestra's meaning: ``images_file.seek(0)`` works), closed once the code has run."""
    filename = f"<step {ctx.job.step_name}>"
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        text = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        raise StepError(f"syntax error in the code at {where}: {exc.msg}{text}") from None
    # Tracebacks of the user's exceptions then show their source lines, not just line numbers.
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    with contextlib.ExitStack() as opened:
        namespace: dict[str, Any] = {**preset, **_parameters(ctx, opened), "__name__": "__orchestra__"}
        exec(compiled, namespace)  # the point of this tool; see the module docstring for the safety model
        return namespace.get("response")


def _parameters(ctx: StepContext, opened: contextlib.ExitStack) -> dict[str, Any]:
    raw = ctx.request_as(CodeBody).parameters
    # The model refuses non-identifiers; a keyword such as 'class' passes it but cannot be a global.
    for name in raw:
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
            raise StepError(f"parameter name {name!r} is not usable as a Python variable name")

    def open_file(path: str) -> CodeFile:
        return opened.enter_context(CodeFile(io.FileIO(path, "rb")))

    resolved: dict[str, Any] = ctx.resolve(raw, open_file)
    return resolved


def response_metadata(ctx: StepContext, response: Any) -> dict[str, Any]:
    return {
        "responseType": type(response).__name__,
        "globals": sorted(ctx.request_as(CodeBody).parameters),
    }


def _candidate_files(ctx: StepContext) -> Iterator[Path]:
    """Regular, non-hidden files in the step's working directory (the worker keeps its own files outside)."""
    root = ctx.work_dir
    output = ctx.output_dir.resolve()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        if path.resolve().is_relative_to(output):
            continue
        yield path


def _snapshot(ctx: StepContext) -> dict[Path, tuple[int, int]]:
    return {path: _signature(path) for path in _candidate_files(ctx)}


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _collect_files(ctx: StepContext, before: dict[Path, tuple[int, int]]) -> tuple[list[str], list[str], list[str]]:
    """Copy what the code wrote into ``output/files/``; tabular text files also become Parquet."""
    files: list[str] = []
    tables: list[str] = []
    skipped: list[str] = []
    for path in _candidate_files(ctx):
        if before.get(path) == _signature(path):
            continue  # there before the code ran, unchanged
        name = path.relative_to(ctx.work_dir).as_posix()
        if path.stat().st_size > MAX_COPIED_FILE_BYTES:
            skipped.append(f"{name} (larger than {MAX_COPIED_FILE_BYTES // (1024 * 1024)} MB)")
            continue
        dest = ctx.output_dir / FILES_DIR / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        files.append(name)
        if _store_as_table(path, dest.with_name(dest.name + ".parquet")):
            tables.append(f"{name}.parquet")
    return files, tables, skipped


def _store_as_table(path: Path, dest: Path) -> bool:
    """Write ``path`` as Parquet when it reads as a CSV/TSV table (separator sniffed, as in the seed's
    ``score.to_csv('score', sep='\\t')``). A text file that parses as one column counts only with a
    .csv/.tsv name: otherwise every log file would become a table."""
    import pandas as pd

    if path.suffix.lower() not in TEXT_SUFFIXES or path.stat().st_size > MAX_TABLE_PARSE_BYTES:
        return False
    try:
        frame = pd.read_csv(path, sep=None, engine="python")
    except Exception:  # noqa: BLE001 - whatever the parser objects to, the file is simply not a table
        return False
    if frame.empty or (frame.shape[1] < 2 and path.suffix.lower() not in (".csv", ".tsv")):
        return False
    write_table(frame_to_arrow(frame), dest)
    return True
