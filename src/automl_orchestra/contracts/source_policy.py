"""The one policy for anything a request names outside the service: dataset URLs, code URLs, server paths.

Applied twice with the same functions: by the API when a step is created (a clear 422 at once) and by the
worker right before it downloads or reads (DNS may answer differently by then, a step can be re-run days
later, and a redirect names a new URL). Standard library only, so the API can import it without the engines.
Every refusal is an :class:`UnsafeSource` whose message says what was refused and which setting allows it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}  # scheme -> default port
URL_ALLOWLIST_SETTING = "ORCHESTRA_URL_ALLOWLIST"
IMPORT_DIRS_SETTING = "ORCHESTRA_IMPORT_DIRS"
CODE_URL_HOSTS_SETTING = "ORCHESTRA_CODE_URL_HOSTS"
# RFC 6761: these names are the local machine whatever a resolver says, so they never need a lookup.
_LOOPBACK_NAMES = ("localhost", ".localhost")
# RFC 6052 NAT64 prefix: a gateway would forward to the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_USERINFO = re.compile(r"(?<=://)[^/?#]*@")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeSource(ValueError):
    """A URL or path a request may not use; the message names the setting that would allow it."""


@dataclass(frozen=True)
class CheckedUrl:
    """A URL the policy accepted: its host and port, and the addresses it was checked against (the worker
    connects to one of these, never to a second lookup's answer)."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]  # empty only when the caller asked for no lookup


# --- URLs ---------------------------------------------------------------------------------------------


def check_url(url: str, allow_hosts: Collection[str] = ()) -> CheckedUrl:
    """A dataset URL: http(s), no credentials, and every address of the host public unless the host is in
    ``allow_hosts`` (ORCHESTRA_URL_ALLOWLIST). The host is always resolved: that is the check."""
    host, port = _parse(url, "URL")
    addresses = resolve_host(host, port, url)
    if host in _lower(allow_hosts):
        return CheckedUrl(url, host, port, addresses)
    for address in addresses:
        reason = non_public_reason(ipaddress.ip_address(address))
        if reason:
            raise UnsafeSource(
                f"URL {_shown(url)!r}: {host} resolves to {address}, a non-public "
                f"(loopback/private/link-local/reserved/multicast) address ({reason}); the server may read "
                f"from such a host only when it is listed in {URL_ALLOWLIST_SETTING}"
            )
    return CheckedUrl(url, host, port, addresses)


def check_code_url(url: str, code_hosts: Collection[str], *, resolve: bool = False) -> CheckedUrl:
    """A code URL: http(s), no credentials, and the host in ``code_hosts`` (ORCHESTRA_CODE_URL_HOSTS), an
    exclusive list of trusted hosts that may be private (an internal Git server). Whatever the host resolves
    to is accepted, so the API needs no lookup; the worker asks for one (``resolve``) to pin the connection."""
    host, port = _parse(url, "code URL")
    listed = _lower(code_hosts)
    if host not in listed:
        allowed = ", ".join(sorted(listed)) if listed else "none (code URLs are disabled on this server)"
        raise UnsafeSource(
            f"code URL {_shown(url)!r}: host {host!r} is not allowed; allowed hosts: {allowed}. "
            f"Code is downloaded only from hosts listed in {CODE_URL_HOSTS_SETTING}"
        )
    return CheckedUrl(url, host, port, resolve_host(host, port, url) if resolve else ())


def _parse(url: str, what: str) -> tuple[str, int]:
    """Scheme, credentials and host rules shared by every URL; returns the lower-case host and the port."""
    # Whitespace and control characters are dropped or kept differently by different URL parsers; refusing
    # them means the policy and the HTTP client cannot disagree about which host a URL names.
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeSource(f"{what} {_shown(url)!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeSource(f"{what} {_shown(url)!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeSource(
            f"{what} {_shown(url)!r}: only http and https URLs are accepted, not {parts.scheme or 'no scheme'!r}"
        )
    if parts.username is not None or parts.password is not None:
        # Refused (not merely hidden): the URL would be stored in the step's parameters, readable by viewers.
        raise UnsafeSource(
            f"{what} {_shown(url)!r}: URLs with credentials (user:password@host) are not accepted; "
            "publish the file at a URL that needs no credentials, or upload it"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeSource(f"{what} {_shown(url)!r} has no host")
    return host, port or SCHEMES[parts.scheme.lower()]


def _shown(url: str) -> str:
    """The URL as messages show it: without any user:password@ part (messages end up in stored errors)."""
    return _USERINFO.sub("", url, count=1)


def _lower(hosts: Collection[str]) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in hosts if host.strip())


# --- addresses ----------------------------------------------------------------------------------------


def resolve_host(host: str, port: int, url: str = "") -> tuple[str, ...]:
    """The addresses ``host`` stands for: itself when it is an IP literal, loopback for localhost names,
    otherwise what the resolver answers (in its order, without duplicates)."""
    literal = _ip_literal(host)
    if literal is not None:
        return (str(literal),)
    if host == _LOOPBACK_NAMES[0] or host.endswith(_LOOPBACK_NAMES[1]):
        return ("127.0.0.1",)
    where = f"URL {_shown(url)!r}: " if url else ""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeSource(f"{where}cannot resolve host {host!r}: {exc}") from None
    # An IPv6 zone ("fe80::1%eth0") is not part of the address that is checked or connected to.
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise UnsafeSource(f"{where}host {host!r} has no address")
    return addresses


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (e.g. "loopback"), or None when it is one.

    The union of every rule either side of the service ever applied: any special-purpose range counts,
    and so does an IPv6 address that carries one of those IPv4 addresses (mapped, 6to4, NAT64).
    """
    # The embedded address first: "loopback, embedded IPv4 127.0.0.1" says more than "private".
    embedded = _embedded_ipv4(address)
    inner = _own_reason(embedded) if embedded is not None else None
    if inner:
        return f"{inner}, embedded IPv4 {embedded}"
    return _own_reason(address)


def _own_reason(address: IPAddress) -> str | None:
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        # Shared (100.64/10), documentation, benchmarking ... ranges are none of the above but not global.
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# --- server paths -------------------------------------------------------------------------------------


def check_import_path(path: str, import_dirs: Sequence[str | Path]) -> Path:
    """``path`` resolved (symlinks included); it must be absolute, lie inside one of ``import_dirs``
    (ORCHESTRA_IMPORT_DIRS, themselves resolved) and be a regular file. Returns the resolved path, which is
    what the caller must open: the name it was given may be a symlink that points elsewhere later."""
    if not import_dirs:
        raise UnsafeSource(
            f"reading server paths is disabled: the server has no import directories; "
            f"set {IMPORT_DIRS_SETTING} to allow a directory"
        )
    if "\0" in path:
        raise UnsafeSource(f"path {path!r} contains a NUL character")
    if not os.path.isabs(path):
        raise UnsafeSource(f"path {path!r} must be absolute (a file inside {IMPORT_DIRS_SETTING})")
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(root)) for root in import_dirs]
    if not any(real.is_relative_to(root) for root in roots):
        shown = [str(root) for root in import_dirs]
        raise UnsafeSource(
            f"path {path!r} is outside the import directories {shown}; "
            f"the server reads only files inside {IMPORT_DIRS_SETTING}"
        )
    if not real.is_file():
        raise UnsafeSource(f"path {path!r} is not a regular file")
    return real
