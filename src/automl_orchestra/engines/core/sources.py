"""The file behind a dataset step's ``source`` (a URL, an upload or a server path), opened in the worker and
checked there again by the same policy the API applied at POST (``contracts.source_policy``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.source_policy import UnsafeSource, check_import_path
from automl_orchestra.engines.core import params as p
from automl_orchestra.engines.core.base import StepContext
from automl_orchestra.engines.core.downloads import download_to_file

_MB = 1024 * 1024


@dataclass(frozen=True)
class LocalSource:
    path: Path
    filename: str  # the name the user knows the file by (upload name, URL or path basename)
    description: dict[str, Any]  # reported as metadata["source"]
    disposable: bool  # a temporary copy this step may move instead of copying


@contextlib.contextmanager
def open_source(ctx: StepContext) -> Iterator[LocalSource]:
    """A local, readable file for the step's ``source`` parameter (url, upload or path)."""
    source = ctx.params.get("source")
    if isinstance(source, str):  # a bare URL is unambiguous enough to accept
        source = {"kind": "url", "url": source}
    if not isinstance(source, dict):
        raise StepError("parameter 'source' must be {'kind': 'url'|'upload'|'path', ...}")
    kind = source.get("kind")
    if kind == "url":
        with _downloaded(ctx, p.require_str(source, "url")) as local:
            yield local
    elif kind == "upload":
        key = p.require_str(source, "key")
        filename = p.optional_str(source, "filename") or key.rsplit("/", 1)[-1]
        if not ctx.store.exists(key):
            raise StepError(f"the uploaded file {filename!r} is no longer in the artifact store")
        with ctx.store.local_copy(key) as path:
            yield LocalSource(path, filename, {"kind": "upload", "filename": filename}, disposable=False)
    elif kind == "path":
        path = import_path(p.require_str(source, "path"), ctx.job.policy.import_dirs)
        yield LocalSource(path, path.name, {"kind": "path", "path": str(path)}, disposable=False)
    else:
        raise StepError(f"source kind {kind!r} is not one of 'url', 'upload', 'path'")


@contextlib.contextmanager
def _downloaded(ctx: StepContext, url: str) -> Iterator[LocalSource]:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=ctx.work_dir, prefix=".download-")
    os.close(handle)
    temp = Path(name)
    try:
        info = download_to_file(
            url,
            temp,
            max_bytes=ctx.job.policy.max_download_mb * _MB,
            allow_hosts=ctx.job.policy.url_allow_hosts,
        )
        print(f"downloaded {info.size} bytes from {info.url}", flush=True)
        yield LocalSource(temp, info.filename, {"kind": "url", "url": url}, disposable=True)
    finally:
        temp.unlink(missing_ok=True)


def import_path(path: str, import_dirs: list[str]) -> Path:
    """``path`` checked by the API's own rule (absolute, symlinks resolved, a regular file inside an import
    directory); the resolved path is what must be opened. A refusal fails the step with the policy's message."""
    try:
        return check_import_path(path, import_dirs)
    except UnsafeSource as exc:
        raise StepError(str(exc)) from None
