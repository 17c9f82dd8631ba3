"""Uploads over the real server: authentication and the role come before a byte is read, the body is counted
as it arrives and cut at the limit, and a refused upload leaves nothing behind -- not in the artifact store,
not in the server's temporary directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TOKENS, ServerHandle, launch

LIMIT_MB = 1
CSV = b"a,b\n" + b"1,2\n" * 150_000  # 600 KB: under the limit


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    home = tmp_path_factory.mktemp("uploads")
    (home / "tmp").mkdir()
    tokens = ",".join(f"{token}:{role}" for token, role in TOKENS.items())
    handle = launch(
        home,
        token="editor-token",
        ORCHESTRA_TOKENS=tokens,
        ORCHESTRA_MAX_UPLOAD_MB=str(LIMIT_MB),
        TMPDIR=str(home / "tmp"),
    )
    yield handle
    handle.stop()


def stored(server: ServerHandle) -> list[Path]:
    """Every file and folder an upload could have left: the steps' artifacts and the temporary directory."""
    steps = server.home / "artifacts" / "steps"
    left = list(steps.rglob("*")) if steps.exists() else []
    return left + list((server.home / "tmp").rglob("*"))


def multipart(name: str, chunks: Iterator[bytes], boundary: str) -> Iterator[bytes]:
    """A multipart body sent as it is generated (chunked, no Content-Length): the server cannot know its size."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode()


def streamed(http: httpx.Client, route: str, name: str, megabytes: int) -> httpx.Response:
    boundary = uuid.uuid4().hex
    chunks = (b"1,2\n" * 262_144 for _ in range(megabytes))
    return http.post(
        route,
        content=multipart(name, chunks, boundary),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def send(server: ServerHandle, token: str | None, name: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(
        f"{server.api}/dataset/csv", data={"name": name}, files={"file": ("a.csv", CSV)}, headers=headers, timeout=60
    )


def test_refused_callers_leave_nothing(small: ServerHandle) -> None:
    assert send(small, None, "up_anonymous").status_code == 401
    assert send(small, "wrong-token", "up_wrong").status_code == 401
    response = send(small, "viewer-token", "up_viewer")
    assert response.status_code == 403 and "viewer" in response.json()["error"]["message"]
    assert stored(small) == []
    with small.client() as http:
        for name in ("up_anonymous", "up_wrong", "up_viewer"):
            assert http.get(f"/steps/{name}").status_code == 404


def written_mb(server: ServerHandle) -> float:
    """Megabytes the server process has handed to write() so far (files, spooled uploads, sockets)."""
    assert server.process is not None
    return float(psutil.Process(server.process.pid).io_counters().write_chars) / 2**20


def test_upload_is_cut_at_the_limit_as_it_arrives(small: ServerHandle) -> None:
    with small.client(timeout=120) as http:
        before = written_mb(small)
        response = streamed(http, "/dataset/csv", "up_big", megabytes=40)
        # Past the limit the bytes were read and dropped: not spooled to a temporary file.
        assert written_mb(small) - before < 10 * LIMIT_MB
        assert response.status_code == 413, response.text
        assert f"limit of {LIMIT_MB} MB" in response.json()["error"]["message"]
        assert http.get("/steps/up_big").status_code == 404
    assert stored(small) == []


def test_declared_size_over_the_limit_is_refused_before_reading(small: ServerHandle) -> None:
    with small.client() as http:
        body = b"x" * (LIMIT_MB * 2**20 * 3)
        response = http.post("/dataset/csv", content=body, headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert response.status_code == 413 and f"limit of {LIMIT_MB} MB" in response.text
    assert stored(small) == []


def test_upload_refused_after_storing_is_removed(small: ServerHandle) -> None:
    with small.client() as http:
        response = http.post(
            "/dataset/csv",
            data={"name": "up_limits", "limits": '{"timeoutS": 1e9}'},
            files={"file": ("a.csv", CSV)},
        )
        assert response.status_code == 422 and "limits.timeoutS" in response.text
        assert http.get("/steps/up_limits").status_code == 404
    assert stored(small) == []


def test_time_series_upload_is_cut_at_the_limit(small: ServerHandle) -> None:
    with small.client(timeout=120) as http:
        response = streamed(http, "/timeseries/train", "ignored", megabytes=20)
        assert response.status_code == 413, response.text
    assert stored(small) == []


def test_server_keeps_accepting_uploads(small: ServerHandle) -> None:
    response = send(small, "editor-token", "up_fine")
    assert response.status_code == 201, response.text
    assert small.wait("up_fine")["status"] == "finished"
    with small.client() as http:
        metadata, *rows = http.get("/dataset/csv/up_fine", params={"limit": 2}).json()["result"]
        assert metadata["name"] == "up_fine" and rows == [{"a": 1, "b": 2}, {"a": 1, "b": 2}]
