"""Shared fixtures: real servers (uvicorn in a subprocess on a free port, real workers, real SQLite or
PostgreSQL), small real data written by the tests themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

# The command-line tests' ``client`` and ``run`` fixtures (tests/client/ has its own ``client``).
pytest_plugins = ["tests.cli_fixtures"]

TOKENS = {"admin-token": "admin", "editor-token": "editor", "viewer-token": "viewer"}


START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerHandle:
    """A real ``orchestra serve`` process. ``restart()`` keeps its data (database and artifacts)."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    token: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def client(self, token: str | None = None, timeout: float = 60.0) -> httpx.Client:
        token = token or self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=timeout)

    def start(self) -> ServerHandle:
        env = {**os.environ, **self.env, "ORCHESTRA_HOME": str(self.home), "ORCHESTRA_PORT": str(self.port)}
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "automl_orchestra.api.server"], env=env, stdout=log, stderr=log
        )
        # Generous: a loaded CI machine took ~50 s to start a server with two warm workers.
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {(self.home / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.api}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop(kill=True)  # never leave an unowned server behind
        raise RuntimeError(f"server did not start within {START_TIMEOUT_S:g} s")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, kill: bool = False) -> ServerHandle:
        self.stop(kill=kill)
        return self.start()

    def wait(self, name: str, timeout: float = 120.0) -> dict:
        """Block on the REST long poll until the step settles; returns its metadata document."""
        deadline = time.monotonic() + timeout
        with self.client() as http:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"step {name} did not settle within {timeout} s")
                response = http.get(f"/observe/{name}", params={"timeout": min(remaining, 60)})
                response.raise_for_status()
                body = response.json()
                if not body["timedOut"]:
                    return body["result"]


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "ORCHESTRA_WORKERS": "2",
        "ORCHESTRA_WARM_WORKERS": "1",
        "ORCHESTRA_URL_ALLOWLIST": "127.0.0.1,localhost",
        "ORCHESTRA_IMPORT_DIRS": str(home / "imports"),
        "ORCHESTRA_HEARTBEAT_S": "1",
    }
    env.update(extra)
    (home / "imports").mkdir(parents=True, exist_ok=True)
    return env


def launch(home: Path, token: str | None = None, **extra: str) -> ServerHandle:
    home.mkdir(parents=True, exist_ok=True)
    return ServerHandle(home=home, env=base_env(home, **extra), token=token).start()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A shared server with auth off, once on SQLite (the zero-set-up default) and once on PostgreSQL:
    every test using it runs against both databases."""
    extra = {}
    if request.param == "postgresql":
        extra["ORCHESTRA_DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres_url"))
    handle = launch(tmp_path_factory.mktemp(f"server-{request.param}"), **extra)
    yield handle
    handle.stop()


def fresh_database(postgres_url: str) -> str:
    """A new, empty database on the test PostgreSQL server; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    tokens = ",".join(f"{token}:{role}" for token, role in TOKENS.items())
    handle = launch(tmp_path_factory.mktemp("auth"), token="admin-token", ORCHESTRA_TOKENS=tokens)
    yield handle
    handle.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A server of its own, for tests that restart or kill it."""
    handle = launch(tmp_path / "fresh")
    yield handle
    handle.stop(kill=True)


@pytest.fixture
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL: ORCHESTRA_TEST_POSTGRES_URL (set by scripts/test.sh), or a private cluster
    started here from the installed server binaries."""
    given = os.environ.get("ORCHESTRA_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    # Not under pytest's temp dir: that one is private to root, and the server runs as 'postgres'.
    cluster = _PrivateCluster(Path(tempfile.mkdtemp(prefix="orchestra-pg-")))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class _PrivateCluster:
    def __init__(self, root: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins and not shutil.which("initdb"):
            pytest.fail("PostgreSQL is not installed: run the README's test command (make test), which installs it")
        self.bin = bins[-1] if bins else Path(shutil.which("initdb") or "").parent
        self.data = root / "data"
        self.port = free_port()
        self.root = root
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True)

    def start(self) -> str:
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "pg.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "start",
        )
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "orchestra")
        return f"postgresql://postgres@127.0.0.1:{self.port}/orchestra"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)
