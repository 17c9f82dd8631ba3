"""The messages between the scheduler and a worker: plain JSON, so a job can run in another interpreter,
another virtual environment or on another machine (nothing here assumes shared memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from automl_orchestra.contracts.outputs import OutputRef

# Written into a job's work directory when a cancel asks a stoppable search to end with what it has.
STOP_FILE = "stop-requested"


class JobLimits(BaseModel):
    timeout_s: float
    memory_mb: int
    cpus: int = 1
    gpus: float = 0.0


class WorkerPolicy(BaseModel):
    """The parts of the server's security settings a worker enforces itself (downloads, code URLs)."""

    url_allow_hosts: list[str] = Field(default_factory=list)
    code_url_hosts: list[str] = Field(default_factory=list)
    import_dirs: list[str] = Field(default_factory=list)
    max_download_mb: int = 2048


class JobSpec(BaseModel):
    run_id: str
    step_name: str
    service: str
    tool: str
    parameters: dict[str, Any]
    inputs: dict[str, OutputRef] = Field(
        default_factory=dict, description="output of every step the parameters reference, by step name"
    )
    derived: list[str] = Field(default_factory=list, description="names of derived outputs to produce")
    environment: str = "main"
    python: str | None = Field(
        default=None, description="interpreter of the environment; None: the executor resolves the name itself"
    )
    environment_pythons: dict[str, str] = Field(
        default_factory=dict,
        description="interpreter of every engine environment (a step scoring another environment's model runs "
        "it there, engines/core/foreign.py)",
    )
    artifact_url: str
    output_prefix: str
    work_dir: str
    limits: JobLimits
    policy: WorkerPolicy = Field(default_factory=WorkerPolicy)
    retryable: bool = Field(default=False, description="the executor may run it again once if its node is lost")
    allow_code: bool = Field(
        default=False,
        description="the step's creator had the code role: the worker skips contracts/code_policy.py (denied "
        "names and parameters, callables passed by reference); private attributes stay refused",
    )
    input_states: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="status, reason, metadata and wall time of every input, for tools that tolerate failed inputs",
    )
    # Driver steps (e.g. automl/nas) create child steps through the API and wait on them: they get the API's
    # URL and a short-lived token, and take no executor slot, so their children can always run.
    driver: bool = Field(default=False, description="the step drives child steps through the API")
    api_url: str | None = Field(default=None, description="the API base URL a driver step calls")
    api_token: str | None = Field(default=None, description="a short-lived bearer token for a driver step")
    stop_grace_s: float = Field(
        default=0.0,
        description="a cancel first asks the job to stop and keep what it has (a search: its best model) and "
        "kills it only this many seconds later; 0: a cancel kills at once",
    )

    @property
    def stop_file(self) -> Path:
        return Path(self.work_dir) / STOP_FILE


class JobResult(BaseModel):
    run_id: str
    status: Literal["finished", "failed", "cancelled"]
    reason: str | None = None
    exception: str | None = None
    traceback: str | None = None
    output: OutputRef | None = None
    derived: dict[str, OutputRef] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    output_hash: str | None = None
    peak_memory_mb: float | None = None
    cpu_time_s: float | None = None
    wall_s: float | None = None
    node: str | None = None
