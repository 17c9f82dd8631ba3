"""The messages between the API process and its serving workers (``runtime/serving_pool.py`` and
``runtime/serving_worker.py``): length-prefixed frames over the worker's stdin and a private copy of its
stdout, each a JSON header and a byte payload.

A frame is ``>II`` (header length, payload length), the header (UTF-8 JSON) and the payload. A request's
payload is the HTTP body as it came (JSON, Arrow IPC or Parquet) so the API process never parses rows; an
answer's payload is the HTTP answer's JSON body, sent back as it is.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict

FRAME_HEAD = struct.Struct(">II")
# Request body formats the worker decodes (the HTTP Content-Type names them).
JSON_FORMAT = "json"
ARROW_FORMAT = "arrow"
PARQUET_FORMAT = "parquet"
V2_FORMAT = "v2"  # an Open Inference Protocol request body (JSON)
SERIES_FORMAT = "series"  # an uploaded series file (long CSV or UCR .ts), read as dataset/timeseries reads it
ARROW_TYPES = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
# Operations a worker answers.
PREDICT = "predict"
LOAD = "load"
STOP = "stop"


class ServedVersion(BaseModel):
    """What a worker needs to load and check one registered version (immutable: cached by ``key``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    version: int
    environment: str
    output: dict[str, Any]  # the version's OutputRef (its frozen copy)
    signature: dict[str, Any] | None = None
    status: str = "ready"

    @property
    def key(self) -> str:
        return f"{self.model}/{self.version}"


class SeriesFile(BaseModel):
    """How to read a ``series`` body: the upload's file name (``.ts``: the UCR format) and, for a long CSV,
    its id and time columns."""

    model_config = ConfigDict(extra="forbid")

    filename: str
    column_id: str = "id"
    column_sort: str = "time"


class PredictCall(BaseModel):
    """One request to a serving worker; the payload travels beside it."""

    model_config = ConfigDict(extra="forbid")

    op: str = PREDICT
    version: ServedVersion | None = None
    format: str = JSON_FORMAT
    probabilities: bool | None = None  # None: the model's default (classifiers answer them)
    max_rows: int = 100_000
    request_id: str | None = None
    series: SeriesFile | None = None  # with format ``series``


class WorkerAnswer(BaseModel):
    """A worker's answer: ``status`` is the HTTP status the API answers with, ``payload`` its body."""

    model_config = ConfigDict(extra="forbid")

    status: int
    error: str | None = None
    load_s: float = 0.0
    predict_s: float = 0.0
    handle_s: float = 0.0  # the whole request in the worker (decode, check, predict, answer)
    rows: int = 0


def encode(header: BaseModel, payload: bytes = b"") -> bytes:
    body = header.model_dump_json(exclude_defaults=False).encode()
    return FRAME_HEAD.pack(len(body), len(payload)) + body + payload


def decode_head(head: bytes) -> tuple[int, int]:
    sizes: tuple[int, int] = FRAME_HEAD.unpack(head)
    return sizes


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    """The next frame of a blocking stream, None at its end."""
    head = stream.read(FRAME_HEAD.size)
    if len(head) < FRAME_HEAD.size:
        return None
    header_size, payload_size = decode_head(head)
    header = json.loads(stream.read(header_size))
    payload = stream.read(payload_size) if payload_size else b""
    return header, payload


def body_format(content_type: str) -> str | None:
    """The worker format of an HTTP body's Content-Type, None when predict does not read it."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "application/json") or media.endswith("+json"):
        return JSON_FORMAT
    if media in ARROW_TYPES:
        return ARROW_FORMAT
    if media in PARQUET_TYPES:
        return PARQUET_FORMAT
    return None


# Where the sampled predictions of a version are logged in the artifact store (``runtime/prediction_log.py``).
PREDICTION_LOG_ROOT = "predictions"


def prediction_log_prefix(model: str, version: int) -> str:
    return f"{PREDICTION_LOG_ROOT}/{model}/{version}"
