"""Checks on anything a request names outside the service: URLs and server paths.

Used twice: by the API when a step is created (a clear 4xx at once) and by the worker right before it
downloads or reads (the address a host resolves to may have changed in between).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit


class UnsafeSource(ValueError):
    """A URL or path a request may not use."""


def check_url(url: str, allow_hosts: frozenset[str] | set[str] | list[str] = frozenset(), resolve: bool = True) -> str:
    """Return the host of an acceptable http(s) URL; refuse other schemes and non-public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UnsafeSource(f"only http and https URLs are accepted, not {parts.scheme or 'no scheme'!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeSource(f"the URL {url!r} has no host")
    if parts.username or parts.password:
        raise UnsafeSource("URLs with credentials are not accepted")
    if host in {h.lower() for h in allow_hosts}:
        return host
    for address in _addresses(host, parts.port, resolve):
        if not address.is_global or address.is_multicast:
            raise UnsafeSource(
                f"the host {host!r} resolves to the non-public address {address}; "
                "add it to ORCHESTRA_URL_ALLOWLIST to allow it"
            )
    return host


def _addresses(host: str, port: int | None, resolve: bool) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeSource(f"the host {host!r} cannot be resolved: {exc.strerror}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def check_import_path(path: str, import_dirs: list[Path] | list[str]) -> Path:
    """Resolve ``path`` (symlinks included) and require it to be a file inside an import directory."""
    if not import_dirs:
        raise UnsafeSource("reading server paths is disabled: set ORCHESTRA_IMPORT_DIRS to allow a directory")
    real = Path(os.path.realpath(path))
    for root in import_dirs:
        root_real = Path(os.path.realpath(root))
        if real == root_real or root_real in real.parents:
            if not real.is_file():
                raise UnsafeSource(f"{path!r} is not a file")
            return real
    raise UnsafeSource(f"{path!r} is outside the import directories")


def check_code_url(url: str, code_hosts: frozenset[str] | set[str] | list[str]) -> str:
    host = (urlsplit(url).hostname or "").lower()
    if urlsplit(url).scheme not in {"http", "https"}:
        raise UnsafeSource("code URLs must be http or https")
    if host not in {h.lower() for h in code_hosts}:
        raise UnsafeSource(f"code from {host!r} is not allowed: add the host to ORCHESTRA_CODE_URL_HOSTS")
    return host
