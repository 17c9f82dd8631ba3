"""Server settings: every field is an ``ORCHESTRA_*`` environment variable and a CLI flag of ``orchestra serve``."""

from __future__ import annotations

import ipaddress
import os
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRA_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="bind address; anything but loopback requires tokens")
    port: int = Field(default=8080, ge=0, le=65535)
    home: Path = Field(default=Path("./orchestra-data"), description="SQLite database, artifacts, worker logs")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in home")
    artifact_url: str | None = Field(default=None, description="fsspec URL; default: home/artifacts")

    executor: Literal["local", "ray"] = Field(default="local", description="where steps run: local workers or Ray")
    ray_address: str | None = Field(
        default=None, description="Ray cluster to join ('auto', 'host:port', 'ray://...'); default: start a local one"
    )
    ray_namespace: str = Field(default="automl-orchestra", description="Ray namespace of the executor's tasks")
    ray_max_in_flight: int = Field(
        default=0, ge=0, description="Ray steps submitted at once; 0: the cluster's CPU count at start"
    )
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="steps running at once")
    warm_workers: int = Field(default=1, ge=0, description="idle workers kept ready per environment")
    step_timeout_s: float = Field(default=3600.0, gt=0, description="default wall-time limit of a step")
    step_memory_mb: int = Field(default=4096, gt=0, description="default memory limit of a step")
    max_step_timeout_s: float = Field(default=24 * 3600.0, gt=0, description="the most a request may ask for")
    max_step_memory_mb: int = Field(default=32768, gt=0, description="the most a request may ask for")

    # "token:role,token:role"; empty means auth off, which is only allowed on loopback.
    tokens: str = Field(default="", description="'token:role,...' with roles viewer, editor, admin")
    code_roles: str = Field(default="admin", description="roles that may create function/builder steps")
    allow_code: bool = Field(default=True, description="allow code steps at all")

    import_dirs: str = Field(default="", description="os.pathsep-separated directories a path ingest may read")
    url_allowlist: str = Field(default="", description="comma-separated hosts allowed although private/loopback")
    code_url_hosts: str = Field(default="", description="comma-separated hosts function code may come from")
    max_upload_mb: int = Field(default=1024, gt=0, description="largest upload accepted")
    max_download_mb: int = Field(default=2048, gt=0, description="largest URL download accepted")

    environments: str = Field(
        default="",
        description="engine environments: 'name=/path/to/python,...'; besides these, every virtualenv "
        "'.venv-NAME' next to the server's own is environment NAME (scripts/bootstrap.sh creates them)",
    )
    instance_id: str | None = Field(default=None, description="name of this instance (default: host + random)")
    heartbeat_s: float = Field(default=5.0, gt=0, description="instance heartbeat interval")
    poll_s: float = Field(default=0.05, gt=0, description="scheduler queue poll interval")
    log_format: Literal["json", "text"] = Field(
        default="json", description="server log lines: one JSON object each, or text (docs/observability.md)"
    )
    public_url: str | None = Field(
        default=None,
        description="URL workers reach this API at, for driver steps (automl/nas); default http://host:port",
    )
    serving_workers: int = Field(
        default=2, ge=1, le=64, description="serving worker processes per engine environment (online predict)"
    )
    serving_queue: int = Field(
        default=64, ge=1, le=100_000, description="predict requests waiting per environment before 429 answers"
    )
    serving_timeout_s: float = Field(
        default=30.0, gt=0, description="longest a predict may take before its serving worker is replaced"
    )
    serving_load_timeout_s: float = Field(
        default=300.0, gt=0, description="time a serving worker gets on top to load a version it does not hold"
    )
    serving_max_rows: int = Field(default=100_000, ge=1, description="most rows one predict request may send")
    serving_max_body_mb: int = Field(default=64, ge=1, le=4096, description="largest predict request body")
    serving_loaded_versions: int = Field(
        default=8, ge=1, le=1000, description="model versions a serving worker keeps loaded (least recent out)"
    )
    prediction_log_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="share of predicted rows logged to Parquet per version (0: off)"
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # ----- derived values -------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'orchestra.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or str(self.home / "artifacts")

    @property
    def work_root(self) -> Path:
        return self.home / "work"

    @property
    def api_url(self) -> str:
        """Where workers call this API (driver steps): ``public_url``, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def token_roles(self) -> dict[str, Role]:
        table: dict[str, Role] = {}
        for item in filter(None, (part.strip() for part in self.tokens.split(","))):
            token, _, role = item.rpartition(":")
            if not token or role not in ROLES:
                raise ValueError(f"ORCHESTRA_TOKENS entry {item!r} must be 'token:viewer|editor|admin'")
            table[token] = role
        return table

    @property
    def code_role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.code_roles.split(",") if r.strip())

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens.strip())

    @property
    def import_dir_list(self) -> list[Path]:
        return [Path(p).expanduser().resolve() for p in self.import_dirs.split(os.pathsep) if p.strip()]

    @property
    def url_allow_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.url_allowlist.split(",") if h.strip())

    @property
    def code_url_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.code_url_hosts.split(",") if h.strip())

    @cached_property
    def environment_pythons(self) -> dict[str, str]:
        """Interpreter of every engine environment, found once (every POST and every job asks)."""
        table = {"main": sys.executable, **sibling_environments()}
        for item in filter(None, (part.strip() for part in self.environments.split(","))):
            name, _, python = item.partition("=")
            table[name.strip()] = python.strip()
        return table

    def missing_environment(self, name: str) -> str | None:
        """None when engine environment ``name`` exists here, else what it is and how to create it."""
        if name in self.environment_pythons:
            return None
        return (
            f"the engine environment {name!r}, which this server does not have: create it with "
            f"scripts/bootstrap.sh (environments/{name}/requirements.txt) or point ORCHESTRA_ENVIRONMENTS at its "
            f"interpreter ({name}=/path/to/python)"
        )

    def is_loopback_bind(self) -> bool:
        if self.host in {"localhost"}:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> None:
        """Refuse configurations that would be unsafe, with a message that says how to fix them."""
        _ = self.token_roles  # validates the token syntax
        if not self.is_loopback_bind() and not self.auth_enabled:
            raise ValueError(
                f"refusing to bind to {self.host} without authentication: set ORCHESTRA_TOKENS "
                "(or --tokens) to 'token:role,...' when serving on a non-loopback address"
            )


def sibling_environments() -> dict[str, str]:
    """Engine environments by convention: ``.venv-NAME/bin/python`` beside the running virtualenv (the
    layout scripts/bootstrap.sh creates from ``environments/NAME/requirements.txt``)."""
    if sys.prefix == sys.base_prefix:  # not running in a virtualenv: nothing to look beside
        return {}
    found: dict[str, str] = {}
    for venv in sorted(Path(sys.prefix).parent.glob(".venv-*")):
        python = venv / "bin" / "python"
        if python.is_file():
            found[venv.name.removeprefix(".venv-")] = str(python)
    return found
