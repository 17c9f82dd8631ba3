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
from automl_orchestra.contracts.parameters import DatasetBody, PathSource, UploadSource, UrlSource
from automl_orchestra.contracts.source_policy import UnsafeSource, check_import_path
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
    """A local, readable file for the step's ``source`` (url, upload or path), which the API wrote."""
    source = ctx.request_as(DatasetBody).source
    if source is None:  # only a step written by hand can lack it: the API always sets one
        raise StepError("parameter 'source' must be {'kind': 'url'|'upload'|'path', ...}")
    if isinstance(source, UrlSource):
        with _downloaded(ctx, source.url) as local:
            yield local
    elif isinstance(source, UploadSource):
        with _uploaded(ctx, source) as local:
            yield local
    else:
        yield _server_path(ctx, source)


@contextlib.contextmanager
def _uploaded(ctx: StepContext, source: UploadSource) -> Iterator[LocalSource]:
    filename = source.filename or source.key.rsplit("/", 1)[-1]
    if not ctx.store.exists(source.key):
        raise StepError(f"the uploaded file {filename!r} is no longer in the artifact store")
    with ctx.store.local_copy(source.key) as path:
        yield LocalSource(path, filename, {"kind": "upload", "filename": filename}, disposable=False)


def _server_path(ctx: StepContext, source: PathSource) -> LocalSource:
    path = import_path(source.path, ctx.job.policy.import_dirs)
    return LocalSource(path, path.name, {"kind": "path", "path": str(path)}, disposable=False)


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
