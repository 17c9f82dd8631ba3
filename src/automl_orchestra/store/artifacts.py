"""Artifact storage through fsspec (a local directory by default, any fsspec URL such as ``s3://``).

Keys are ``/``-separated relative paths built by the server from validated step names and run ids,
never from request text. Writes are atomic: a whole run output is staged under a temporary key and moved
into place only when complete, so a crash never leaves a half-written output behind a finished step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


class ArtifactStore:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        fs, root = fsspec.core.url_to_fs(self.url)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/")
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid artifact key {key!r}")
        return f"{self.root}/{key}" if key else self.root

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def open(self, key: str, mode: str = "rb") -> IO[Any]:
        path = self.path(key)
        if "w" in mode:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return self.fs.open(path, mode)

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

    def list_files(self, prefix: str) -> list[str]:
        """Relative file names under ``prefix`` (recursive), sorted."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return []
        names = []
        for full in self.fs.find(base):
            rel = full[len(base) :].lstrip("/")
            if rel:
                names.append(rel)
        return sorted(names)

    def put_dir(self, local_dir: Path, key: str) -> None:
        """Publish a finished local directory at ``key`` atomically (stage, then rename)."""
        target = self.path(key)
        staging = self.path(f"{key.rsplit('/', 1)[0]}/.staging-{uuid.uuid4().hex}") if "/" in key else None
        if staging is None:
            raise ValueError("artifact keys must have a parent folder")
        if self.is_local:
            Path(staging).parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(local_dir, staging) if not _same_device(local_dir, staging) else os.rename(
                local_dir, staging
            )
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(staging, target)
        else:
            self.fs.put(str(local_dir), staging, recursive=True)
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)
            self.fs.mv(staging, target, recursive=True)

    def copy_prefix(self, source: str, target: str) -> None:
        self.fs.copy(self.path(source), self.path(target), recursive=True)

    def delete_prefix(self, prefix: str) -> None:
        """Delete everything under ``prefix``; what a concurrent delete or publish removed first is not an
        error (a DELETE racing a run's end, or two DELETEs of one step)."""
        path = self.path(prefix)
        if self.is_local:
            _remove_tree(path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    def delete_if_empty(self, prefix: str) -> None:
        """Remove the folder ``prefix`` when nothing is left in it (object stores have no empty folders)."""
        if self.is_local:
            with contextlib.suppress(OSError):  # not empty, or already gone
                os.rmdir(self.path(prefix))

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local path for ``key``: the file itself on local storage, a downloaded copy otherwise."""
        if self.is_local:
            yield Path(self.path(key))
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / key.rsplit("/", 1)[-1]
            self.fs.get(self.path(key), str(local), recursive=True)
            yield local

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomic single-file write (temp name + rename)."""
        path = self.path(key)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        self.fs.mv(tmp, path)


def _same_device(local_dir: Path, staging: str) -> bool:
    try:
        return os.stat(local_dir).st_dev == os.stat(Path(staging).parent).st_dev
    except OSError:
        return False


def _remove_tree(path: str, attempts: int = 5) -> None:
    """``rmtree`` that tolerates files vanishing under it and repeats while a concurrent publish renames a
    folder into the tree; the last attempt raises what is left (a real permission problem)."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def step_prefix(name: str) -> str:
    """Artifact folder of everything a step owns (its runs' outputs and uploaded sources)."""
    return f"steps/{name}"


def run_prefix(name: str, number: int, run_id: str) -> str:
    """Artifact folder of one run's output; its captured logs live at ``<prefix>-logs``."""
    return f"{step_prefix(name)}/runs/{number}-{run_id[:8]}"
