"""A hand-made worker for engine tests: real jobs, a real artifact store, no server and no mocks.

``Harness.run`` does what the worker does for one job (engine from the registry, ``engine.run``, the
serializer for ``value``, derived outputs, publication in the store), so a test can chain steps exactly as a
pipeline would and hand the returned ``OutputRef`` to the next step as an input.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from automl_orchestra.contracts import catalog
from automl_orchestra.contracts.jobs import JobLimits, JobSpec, WorkerPolicy
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.engines.core.base import StepContext, StepResult, load_engine, load_output
from automl_orchestra.engines.core.values import save_value
from automl_orchestra.store.artifacts import ArtifactStore
from tests.web import serving


@dataclass
class Ran:
    """One finished step: what the engine returned and how its output was published."""

    result: StepResult
    ref: OutputRef
    derived: dict[str, OutputRef]
    ctx: StepContext
    harness: Harness

    @property
    def metadata(self) -> dict[str, Any]:
        return self.result.metadata

    @property
    def files(self) -> Path:
        return Path(self.harness.store.path(self.ref.prefix))

    def load(self) -> Any:
        return load_output(self.harness.store, self.ref)


@dataclass
class Harness:
    root: Path
    store: ArtifactStore
    policy: WorkerPolicy = field(default_factory=WorkerPolicy)
    refs: dict[str, OutputRef] = field(default_factory=dict)

    def put(self, name: str, value: Any) -> OutputRef:
        """Store ``value`` as the output of a step called ``name`` (like a finished earlier step)."""
        staging = self.root / "staging" / name
        shutil.rmtree(staging, ignore_errors=True)
        ref = save_value(value, staging).model_copy(update={"prefix": f"runs/{name}"})
        self.store.put_dir(staging, ref.prefix)
        self.refs[name] = ref
        return ref

    def output(self, name: str) -> Any:
        """The loaded output of an earlier step, as a later step would see ``$name``."""
        return load_output(self.store, self.refs[name])

    def run_derived(self, ran: Ran, name: str) -> Any:
        """A derived output (e.g. an automl leaderboard) of a finished step, loaded."""
        return load_output(self.store, ran.derived[name])

    def context(
        self,
        service: str,
        tool: str,
        params: dict[str, Any],
        *,
        name: str = "step",
        inputs: list[str] | None = None,
        timeout_s: float = 600.0,
        cpus: int = 1,
    ) -> StepContext:
        work_dir = self.root / "work" / name
        shutil.rmtree(work_dir, ignore_errors=True)
        (work_dir / "output").mkdir(parents=True)
        job = JobSpec(
            run_id=f"run-{name}",
            step_name=name,
            service=service,
            tool=tool,
            parameters=params,
            inputs={step: self.refs[step] for step in (inputs or [])},
            derived=list(catalog.derived_outputs(service, tool)),
            artifact_url=self.store.url,
            output_prefix=f"runs/{name}",
            work_dir=str(work_dir),
            limits=JobLimits(timeout_s=timeout_s, memory_mb=4096, cpus=cpus),
            policy=self.policy,
        )
        return StepContext(job, self.store, work_dir / "output")

    def run(self, service: str, tool: str, params: dict[str, Any], **kwargs: Any) -> Ran:
        ctx = self.context(service, tool, params, **kwargs)
        spec = catalog.tool(tool)
        assert spec is not None and spec.implementation, tool
        engine = load_engine(spec.implementation)
        with contextlib.chdir(ctx.work_dir):
            result = engine.run(service, ctx)
        output = result.output if result.output is not None else engine.save(result.value, ctx.output_dir)
        assert sorted(output.files) == sorted(
            p.relative_to(ctx.output_dir).as_posix() for p in ctx.output_dir.rglob("*") if p.is_file()
        ), "OutputRef.files must list the output folder"
        ref = output.model_copy(update={"prefix": ctx.job.output_prefix, "serializer": engine.name or "builtin"})
        derived = {}
        for derived_name, frame in result.derived.items():
            folder = ctx.work_dir / f"derived-{derived_name}"
            derived[derived_name] = save_value(frame, folder).model_copy(
                update={"prefix": f"{ctx.job.output_prefix}-{derived_name}"}
            )
            self.store.put_dir(folder, derived[derived_name].prefix)
        self.store.put_dir(ctx.output_dir, ref.prefix)
        self.refs[ctx.job.step_name] = ref
        return Ran(result, ref, derived, ctx, self)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(root=tmp_path, store=ArtifactStore(str(tmp_path / "artifacts")))


@dataclass
class WebServer:
    """A real HTTP server on 127.0.0.1 serving ``root``; ``/redirect?to=URL`` answers 302 to URL."""

    root: Path
    port: int

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    import http.server
    from urllib.parse import parse_qs, urlparse

    root = tmp_path / "www"
    root.mkdir()

    class Redirecting(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            if parsed.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", parse_qs(parsed.query)["to"][0])
                self.end_headers()
                return
            super().do_GET()

    with serving(root, Redirecting) as port:
        yield WebServer(root=root, port=port)
