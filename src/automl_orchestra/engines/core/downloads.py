"""HTTP(S) downloads for dataset and code URLs: streaming, size limits and redirects.

Which URLs may be fetched is not decided here: every hop (the first URL and each redirect target) goes
through ``contracts.source_policy``, the same functions the API applied at POST, because DNS can change
between then and the download and a redirect names a new URL. The connection is then *pinned* to an
address the policy checked (a second DNS lookup by the HTTP client could return another one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import httpx

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.source_policy import CheckedUrl, UnsafeSource, check_code_url, check_url

MAX_REDIRECTS = 5
_CHUNK = 1 << 20
_TIMEOUT = httpx.Timeout(60.0, connect=15.0)


@dataclass(frozen=True)
class Download:
    url: str  # the final URL, after redirects
    size: int

    @property
    def filename(self) -> str:
        """The last segment of the final URL's path ("" for a bare host)."""
        return unquote(PurePosixPath(httpx.URL(self.url).path).name)


def download_to_file(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    allow_hosts: Collection[str] = (),
    code_hosts: Collection[str] | None = None,
) -> Download:
    """Stream ``url`` into ``dest``; a failed or oversized download leaves no file behind.

    ``code_hosts`` given: a code URL (the policy's exclusive host list); otherwise a dataset URL whose
    private hosts must be in ``allow_hosts``."""
    try:
        with dest.open("wb") as handle:
            return _stream(url, handle.write, max_bytes, allow_hosts, code_hosts)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def download_bytes(
    url: str, *, max_bytes: int, allow_hosts: Collection[str] = (), code_hosts: Collection[str] | None = None
) -> tuple[bytes, Download]:
    """Like :func:`download_to_file`, into memory (for small things such as code)."""
    chunks: list[bytes] = []
    info = _stream(url, chunks.append, max_bytes, allow_hosts, code_hosts)
    return b"".join(chunks), info


def checked_hop(url: str, allow_hosts: Collection[str], code_hosts: Collection[str] | None) -> CheckedUrl:
    """One hop through the source policy, resolved for pinning; a refusal becomes the step's error."""
    try:
        if code_hosts is not None:
            return check_code_url(url, code_hosts, resolve=True)
        return check_url(url, allow_hosts)
    except UnsafeSource as exc:
        raise StepError(str(exc)) from None


def _stream(
    url: str,
    write: Callable[[bytes], object],
    max_bytes: int,
    allow_hosts: Collection[str],
    code_hosts: Collection[str] | None,
) -> Download:
    current = url
    # trust_env=False: a proxy from the environment would connect on our behalf and defeat the IP checks.
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            checked = checked_hop(current, allow_hosts, code_hosts)
            target = _parsed(checked.url)
            try:
                headers, extensions = _pinning(target)
                pinned = target.copy_with(host=checked.addresses[0])
                with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
                    if response.is_redirect:
                        current = _redirect_target(target, response)
                        continue
                    _check_response(url, response, max_bytes)
                    size = 0
                    for chunk in response.iter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise StepError(_too_large(url, max_bytes))
                        write(chunk)
                    return Download(str(target), size)
            except httpx.HTTPError as exc:
                raise StepError(f"download of {url!r} failed: {type(exc).__name__}: {exc}") from None
    raise StepError(f"download of {url!r} failed: more than {MAX_REDIRECTS} redirects")


def _parsed(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise StepError(f"invalid URL {url!r}: {exc}") from None


def _pinning(target: httpx.URL) -> tuple[dict[str, str], dict[str, Any]]:
    # The request goes to the checked IP; Host and TLS SNI (hence certificate checks) keep the real name.
    extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return {"Host": target.netloc.decode("ascii")}, extensions


def _redirect_target(target: httpx.URL, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise StepError(f"{target} answered a redirect without a Location header")
    return str(target.join(location))


def _check_response(url: str, response: httpx.Response, max_bytes: int) -> None:
    if not response.is_success:
        raise StepError(f"download of {url!r} failed: HTTP {response.status_code} {response.reason_phrase}")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise StepError(_too_large(url, max_bytes))


def _too_large(url: str, max_bytes: int) -> str:
    return f"download of {url!r} exceeds the limit of {max_bytes / 1e6:.3g} MB"


def safe_filename(name: str, default: str = "data.bin") -> str:
    """A file name safe to create in an output folder: ``[A-Za-z0-9._-]``, not hidden, not a path."""
    base = os.path.basename(name.replace("\\", "/"))
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in base)
    cleaned = cleaned.lstrip(".")[:128]
    return cleaned if cleaned.strip("_") else default
