"""HTTP(S) downloads for dataset and code URLs, with the server's network policy enforced by the worker.

The API validates a URL when the step is created, but DNS can change between then and the download (and a
step can be re-run days later), so every hop is checked again here: http/https only, the host resolved and
refused when it is loopback/private/link-local/reserved/multicast unless allow-listed, and the connection
*pinned* to the address that was checked (a second DNS lookup by the HTTP client could return another one).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import httpx

from automl_orchestra.contracts.errors import StepError

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
    only_hosts: Collection[str] | None = None,
) -> Download:
    """Stream ``url`` into ``dest``; a failed or oversized download leaves no file behind."""
    try:
        with dest.open("wb") as handle:
            return _stream(url, handle.write, max_bytes, allow_hosts, only_hosts)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def download_bytes(
    url: str, *, max_bytes: int, allow_hosts: Collection[str] = (), only_hosts: Collection[str] | None = None
) -> tuple[bytes, Download]:
    chunks: list[bytes] = []
    info = _stream(url, chunks.append, max_bytes, allow_hosts, only_hosts)
    return b"".join(chunks), info


def check_url(
    url: str, allow_hosts: Collection[str] = (), only_hosts: Collection[str] | None = None
) -> tuple[httpx.URL, str]:
    """Validate one URL against the policy; return it parsed and the IP address to connect to.

    ``only_hosts`` (code URLs) is an exclusive list of trusted hosts: any other host is refused, and a listed
    host may resolve to a private address (an internal Git server). Otherwise (dataset URLs) any public host
    is allowed, and ``allow_hosts`` lists the hosts that may be private.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise StepError(f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise StepError(f"URL {url!r}: only http and https URLs can be downloaded")
    host = parsed.host.lower()
    if not host:
        raise StepError(f"URL {url!r} has no host")
    allowed = {name.lower() for name in allow_hosts}
    if only_hosts is not None and host not in {name.lower() for name in only_hosts}:
        listed = sorted(only_hosts) or "none (code URLs are disabled)"
        raise StepError(f"URL {url!r}: host {host!r} is not allowed here; allowed hosts: {listed}")
    addresses = _resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    if only_hosts is None and host not in allowed:
        for address in addresses:
            if _is_restricted(address):
                raise StepError(
                    f"URL {url!r}: {host} resolves to {address}, a loopback/private/reserved address; "
                    "such hosts must be allow-listed by the server administrator (ORCHESTRA_URL_ALLOWLIST)"
                )
    return parsed, addresses[0]


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepError(f"cannot resolve host {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise StepError(f"host {host!r} has no address")
    return addresses


def _is_restricted(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def _stream(
    url: str,
    write: Callable[[bytes], object],
    max_bytes: int,
    allow_hosts: Collection[str],
    only_hosts: Collection[str] | None,
) -> Download:
    current = url
    # trust_env=False: a proxy from the environment would connect on our behalf and defeat the IP checks.
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            target, address = check_url(current, allow_hosts, only_hosts)
            try:
                headers, extensions = _pinning(target)
                with client.stream(
                    "GET", target.copy_with(host=address), headers=headers, extensions=extensions
                ) as response:
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
