"""Python client of AutoML Orchestra.

* :class:`Client` -- the modern client for the whole REST API (one ``httpx.Client``).
* :class:`ModelRegistry` -- registered models: versions, aliases and their history (``/models``).
* Learning Orchestra-compatible classes (``DatasetCsv``, ``TransformDataType``, ``TrainScikitLearn``,
  ``FunctionPython``, ``Observer``, ...) so Learning Orchestra pipelines run unchanged.
* Typed exceptions (``NotFoundError``, ``ConflictError``, ``StepFailedError``, ``WaitTimeoutError``, ...).
"""

from automl_orchestra.client import learning_orchestra
from automl_orchestra.client.errors import (
    AuthenticationError,
    ConflictError,
    ConnectionError,
    NotFoundError,
    OrchestraConnectionError,
    OrchestraError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StepFailedError,
    ValidationError,
    WaitTimeoutError,
)
from automl_orchestra.client.http import (
    DEFAULT_URL,
    FAILED_STATUSES,
    SETTLED_STATUSES,
    Client,
    iter_sse,
    name_from_url,
)

# The Learning Orchestra classes are mostly generated from a table, so their names come from that module's
# __all__ rather than from a second hand-kept list here.
from automl_orchestra.client.learning_orchestra import *  # noqa: F403
from automl_orchestra.client.models import ModelRegistry
from automl_orchestra.client.nas import NasService
from automl_orchestra.client.timeseries import TimeSeriesService

__all__ = [
    "DEFAULT_URL",
    "FAILED_STATUSES",
    "SETTLED_STATUSES",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ConnectionError",
    "ModelRegistry",
    "NasService",
    "NotFoundError",
    "OrchestraConnectionError",
    "OrchestraError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StepFailedError",
    "TimeSeriesService",
    "ValidationError",
    "WaitTimeoutError",
    "iter_sse",
    "name_from_url",
    *learning_orchestra.__all__,
]
