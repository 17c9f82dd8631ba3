"""The ``python`` tool: ``function/python`` runs a function body with parameters, ``builder/python`` a whole
pipeline script that writes files (``engines.core.user_code``)."""

from __future__ import annotations

from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.core.user_code import load_code, response_metadata, run_builder, run_code


class PythonCode(Engine):
    name = "python"

    def function(self, ctx: StepContext) -> StepResult:
        response = run_code(ctx, load_code(ctx), {})
        return StepResult(value=response, metadata=response_metadata(ctx, response))

    def builder(self, ctx: StepContext) -> StepResult:
        return run_builder(ctx, {})
