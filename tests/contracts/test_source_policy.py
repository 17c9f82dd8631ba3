"""The one URL and path policy (``contracts.source_policy``): a table of sources and the verdict on each,
and proof that the API and the worker call these very functions rather than copies of the rules."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl_orchestra.contracts import source_policy
from automl_orchestra.contracts.source_policy import UnsafeSource, check_code_url, check_import_path, check_url

# Names the fake resolver knows; nothing in this file touches the real DNS.
FAKE_DNS = {
    "public.example": ["93.184.215.14"],
    "internal.example": ["10.0.0.5"],
    "split.example": ["93.184.215.14", "192.168.1.7"],  # every address counts, not just the first
    "git.internal": ["10.9.9.9"],
}
ALLOWLIST = "ORCHESTRA_URL_ALLOWLIST"


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host not in FAKE_DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in FAKE_DNS[host]]

    monkeypatch.setattr(source_policy.socket, "getaddrinfo", getaddrinfo)
    yield


# (url, allow-listed hosts, None when accepted or a fragment of the refusal, setting the message must name)
URLS: list[tuple[str, list[str], str | None, str | None]] = [
    ("https://public.example/titanic.csv", [], None, None),
    ("http://93.184.215.14:8080/x.csv", [], None, None),
    ("http://user:secret@public.example/x.csv", [], "credentials", None),
    ("https://:token@public.example/x.csv", ["public.example"], "credentials", None),
    ("file:///etc/passwd", [], "only http and https", None),
    ("ftp://public.example/x.csv", [], "only http and https", None),
    ("public.example/x.csv", [], "only http and https", None),
    ("http:///x.csv", [], "has no host", None),
    ("http://public.example:99999/", [], "not a valid URL", None),
    ("http://public.example/a b.csv", [], "whitespace or control", None),
    ("http://127.0.0.1/x.csv", [], "loopback", ALLOWLIST),
    ("http://127.1.2.3:9000/", [], "loopback", ALLOWLIST),
    ("http://localhost/x.csv", [], "loopback", ALLOWLIST),
    ("http://api.localhost/x.csv", [], "loopback", ALLOWLIST),
    ("http://[::1]/x.csv", [], "loopback", ALLOWLIST),
    ("http://10.1.2.3/x.csv", [], "private", ALLOWLIST),
    ("http://192.168.0.10/", [], "private", ALLOWLIST),
    ("http://169.254.169.254/latest/meta-data/", [], "link-local", ALLOWLIST),
    ("http://[fe80::1]/", [], "link-local", ALLOWLIST),
    ("http://[::ffff:127.0.0.1]/", [], "loopback, embedded IPv4 127.0.0.1", ALLOWLIST),
    ("http://[::ffff:10.0.0.1]/", [], "private, embedded IPv4 10.0.0.1", ALLOWLIST),
    ("http://[2002:7f00:1::]/", [], "embedded IPv4 127.0.0.1", ALLOWLIST),  # 6to4
    ("http://[64:ff9b::a9fe:a9fe]/", [], "link-local, embedded IPv4 169.254.169.254", ALLOWLIST),  # NAT64
    ("http://0.0.0.0/", [], "unspecified", ALLOWLIST),
    ("http://224.0.0.1/", [], "multicast", ALLOWLIST),
    ("http://240.0.0.1/", [], "non-public", ALLOWLIST),
    ("http://100.64.0.1/", [], "non-public", ALLOWLIST),
    ("http://[fc00::1]/", [], "private", ALLOWLIST),
    ("http://internal.example/x.csv", [], "internal.example resolves to 10.0.0.5", ALLOWLIST),
    ("http://split.example/x.csv", [], "192.168.1.7", ALLOWLIST),
    ("http://nowhere.example/x.csv", [], "cannot resolve", None),
    # allow-listed hosts may be private; the list is compared case-insensitively
    ("http://internal.example/x.csv", ["INTERNAL.example"], None, None),
    ("http://127.0.0.1:8000/x.csv", ["127.0.0.1"], None, None),
    ("http://localhost:8000/x.csv", ["localhost"], None, None),
    # ... but only the listed name: the same machine under another name is still refused
    ("http://localhost:8000/x.csv", ["127.0.0.1"], "loopback", ALLOWLIST),
]


@pytest.mark.parametrize(("url", "allow", "refusal", "setting"), URLS)
def test_dataset_url_verdicts(url: str, allow: list[str], refusal: str | None, setting: str | None) -> None:
    if refusal is None:
        checked = check_url(url, allow)
        assert checked.url == url and checked.addresses
        return
    with pytest.raises(UnsafeSource, match=refusal) as caught:
        check_url(url, allow)
    assert isinstance(caught.value, ValueError)  # the API maps it to 422 like any bad value
    assert "secret" not in str(caught.value) and "token" not in str(caught.value)
    if setting:
        assert setting in str(caught.value)


def test_accepted_url_carries_the_checked_addresses_for_pinning() -> None:
    checked = check_url("https://Public.Example/data.csv")
    assert (checked.host, checked.port, checked.addresses) == ("public.example", 443, ("93.184.215.14",))
    assert check_url("http://[::1]:81/", ["::1"]).addresses == ("::1",)
    assert check_url("http://127.0.0.1/", ["127.0.0.1"]).port == 80


CODE_URLS: list[tuple[str, list[str], str | None]] = [
    ("https://git.internal/raw/code.py", ["git.internal"], None),  # listed hosts may be private
    ("https://GIT.internal/raw/code.py", ["git.internal"], None),
    ("https://public.example/code.py", [], "code URLs are disabled"),
    ("https://public.example/code.py", ["git.internal"], "host 'public.example' is not allowed"),
    ("https://evil.example/x.py", ["git.internal"], "not allowed"),
    ("https://user:secret@git.internal/code.py", ["git.internal"], "credentials"),
    ("file:///srv/code.py", ["git.internal"], "only http and https"),
]


@pytest.mark.parametrize(("url", "hosts", "refusal"), CODE_URLS)
def test_code_url_verdicts(url: str, hosts: list[str], refusal: str | None) -> None:
    if refusal is None:
        assert check_code_url(url, hosts).addresses == ()  # the API needs no lookup
        assert check_code_url(url, hosts, resolve=True).addresses == ("10.9.9.9",)
        return
    with pytest.raises(UnsafeSource, match=refusal) as caught:
        check_code_url(url, hosts)
    assert "secret" not in str(caught.value)
    if "not allowed" in refusal or "disabled" in refusal:
        assert "ORCHESTRA_CODE_URL_HOSTS" in str(caught.value)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    imports = tmp_path / "imports"
    (imports / "sub").mkdir(parents=True)
    (imports / "data.csv").write_text("a\n1\n")
    (imports / "sub" / "nested.csv").write_text("a\n2\n")
    secret = tmp_path / "secret.csv"
    secret.write_text("password\n")
    (imports / "out-link.csv").symlink_to(secret)
    (imports / "in-link.csv").symlink_to(imports / "data.csv")
    (tmp_path / "outside-link").symlink_to(imports / "data.csv")  # outside the dir, pointing in: fine
    (tmp_path / "imports-sibling").mkdir()
    (tmp_path / "imports-sibling" / "x.csv").write_text("a\n")
    return {"imports": imports, "secret": secret, "root": tmp_path}


def test_import_path_verdicts(tree: dict[str, Path]) -> None:
    imports, root = tree["imports"], tree["root"]
    dirs = [str(imports)]
    accepted = {
        str(imports / "data.csv"): imports / "data.csv",
        str(imports / "sub" / "nested.csv"): imports / "sub" / "nested.csv",
        str(imports / "sub" / ".." / "data.csv"): imports / "data.csv",
        str(imports / "in-link.csv"): imports / "data.csv",  # the resolved file is what gets opened
        str(root / "outside-link"): imports / "data.csv",
    }
    for path, real in accepted.items():
        assert check_import_path(path, dirs) == real.resolve(), path
    refused = {
        str(imports / "out-link.csv"): "outside the import directories",  # a symlink pointing out
        str(tree["secret"]): "outside the import directories",
        str(imports / ".." / "secret.csv"): "outside the import directories",
        str(root / "imports-sibling" / "x.csv"): "outside the import directories",  # a prefix is not a parent
        "imports/data.csv": "must be absolute",  # a relative path
        "data.csv": "must be absolute",
        str(imports / "sub"): "not a regular file",  # a directory
        str(imports): "not a regular file",
        str(imports / "missing.csv"): "not a regular file",
        str(imports / "data.csv") + "\0": "NUL",
    }
    for path, refusal in refused.items():
        with pytest.raises(UnsafeSource, match=refusal) as caught:
            check_import_path(path, dirs)
        if "outside" in refusal or "absolute" in refusal:
            assert "ORCHESTRA_IMPORT_DIRS" in str(caught.value)


def test_import_paths_are_disabled_without_import_dirs(tree: dict[str, Path]) -> None:
    with pytest.raises(UnsafeSource, match=r"disabled.*ORCHESTRA_IMPORT_DIRS"):
        check_import_path(str(tree["imports"] / "data.csv"), [])


def test_import_dirs_are_resolved_too(tree: dict[str, Path]) -> None:
    link_to_dir = tree["root"] / "imports-link"
    link_to_dir.symlink_to(tree["imports"], target_is_directory=True)
    path = str(tree["imports"] / "data.csv")
    assert check_import_path(path, [link_to_dir]) == (tree["imports"] / "data.csv").resolve()


def test_the_api_and_the_worker_call_these_functions() -> None:
    """No second copy of the rules: each side imports the policy's functions themselves."""
    from automl_orchestra.api import datasets
    from automl_orchestra.engines.core import downloads, sources

    assert datasets.check_url is check_url and datasets.check_import_path is check_import_path
    assert downloads.check_url is check_url and downloads.check_code_url is check_code_url
    assert sources.check_import_path is check_import_path
