"""A serving worker: ``python -m automl_orchestra.runtime.serving_worker``, started by the API's serving pool
with the interpreter of one engine environment.

It reads frames (``contracts/serving.py``) on stdin and answers on a private copy of its stdout (file
descriptor 1 itself is pointed at stderr, the worker's log, so nothing a library prints can corrupt the
answers). It keeps the versions it served loaded (the ``ORCHESTRA_SERVING_LOADED`` most recent; one leaving
memory is closed, e.g. releasing an H2O JVM), loads a version with the engine that wrote it in its serving
form (``Engine.load_served``, ``engines/core/serving.py``: what is engine-specific stays in the engine's
folder), turns a request in another input form of the version into its rows (the long series table of a
time-series pipeline), checks the rows against the version's signature and answers the HTTP status and JSON
body of the predict route. A version that can never serve (``NotServable``) is a 422 naming why, remembered;
one that fails to load, a 503. It ends when its stdin closes: the API process is gone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections import OrderedDict
from typing import IO, Any

import numpy as np
import pandas as pd

try:  # several times faster on a batch's answer; an engine environment may lack it
    import orjson
except ImportError:  # pragma: no cover -- the main environment has it
    orjson = None  # type: ignore[assignment]

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import OutputRef
from automl_orchestra.contracts.serving import (
    JSON_FORMAT,
    LOAD,
    PREDICT,
    STOP,
    V2_FORMAT,
    PredictCall,
    ServedVersion,
    WorkerAnswer,
    encode,
    read_frame,
)
from automl_orchestra.engines.core.serving import TASKS, NotServable, ServedModel, input_forms
from automl_orchestra.runtime.prediction_log import PredictionLog
from automl_orchestra.runtime.serving_inputs import Refused, checked, decode, expected_columns, number_rows
from automl_orchestra.store.artifacts import ArtifactStore


class Loaded:
    """One version in memory: the served model and what its requests are checked against."""

    def __init__(self, version: ServedVersion, served: ServedModel) -> None:
        self.version = version
        self.served = served
        output = (version.signature or {}).get("output") or {}
        if served.task is None and output.get("task") in TASKS:
            served.task = output["task"]  # the model does not say; its training step did
        self.columns = expected_columns(version.signature, served.columns())
        self.forms = input_forms([item["name"] for item in self.columns] if self.columns else None)
        # The columns of a version that takes records of numbers as an array (see number_rows).
        names = [item["name"] for item in self.columns or []]
        numbers = bool(names) and all(item.get("type") in ("integer", "number") for item in self.columns or [])
        self.numbers = names if numbers and served.takes_arrays(names) else None

    def rows(self, frame: pd.DataFrame, matrix: bool) -> tuple[pd.DataFrame, list[Any] | None]:
        """The request's rows checked against the version's columns (a request in another input form of the
        version made into them first), and the ids that form gives the rows."""
        ids = None
        form = None if matrix else next((f for f in self.forms if f.matches(frame)), None)
        if form is not None:
            try:
                made = form.rows(frame)
            except StepError as exc:
                raise Refused(422, str(exc)) from None
            frame, ids = made.frame, made.ids
        return checked(frame, self.columns, matrix=matrix, hints=[f.hint for f in self.forms]), ids

    def close(self) -> None:
        try:
            self.served.close()
        except Exception:  # noqa: BLE001 -- a version leaving memory must not end the worker
            traceback.print_exc()


class Server:
    def __init__(self, store: ArtifactStore, keep: int, log: PredictionLog) -> None:
        self.store = store
        self.keep = keep
        self.log = log
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._refused: dict[str, str] = {}  # versions that can never serve, and why

    def handle(self, call: PredictCall, payload: bytes) -> tuple[WorkerAnswer, bytes]:
        if call.op == STOP:
            self.close()
            return WorkerAnswer(status=200), b""
        if call.version is None:
            return WorkerAnswer(status=400, error=f"operation {call.op!r} needs a version"), b""
        began = time.perf_counter()
        try:
            loaded = self.load(call.version)
        except NotServable:
            return WorkerAnswer(status=422, error=self._refused[call.version.key]), b""
        except Exception as exc:  # noqa: BLE001 -- any failure to load is the version's, told to the caller
            return WorkerAnswer(status=503, error=f"version {call.version.key} could not be loaded: {_line(exc)}"), b""
        load_s = time.perf_counter() - began
        if call.op == LOAD:
            return WorkerAnswer(status=200, load_s=load_s), b""
        if call.op != PREDICT:
            return WorkerAnswer(status=400, error=f"unknown operation {call.op!r}"), b""
        try:
            return self.predict(loaded, call, payload, load_s)
        except Refused as refused:
            return WorkerAnswer(status=refused.status, error=refused.message, load_s=load_s), b""
        except StepError as exc:  # the model's own words about these rows
            return WorkerAnswer(status=422, error=f"the model could not predict these rows: {exc}", load_s=load_s), b""
        except Exception as exc:  # noqa: BLE001 -- the model refused these rows: the caller's to fix
            error = f"the model could not predict these rows: {_line(exc)}"
            return WorkerAnswer(status=422, error=error, load_s=load_s), b""

    def load(self, version: ServedVersion) -> Loaded:
        loaded = self._loaded.get(version.key)
        if loaded is not None:
            self._loaded.move_to_end(version.key)
            return loaded
        refused = self._refused.get(version.key)
        if refused is not None:
            raise NotServable(refused)
        from automl_orchestra.engines.core.base import load_served

        try:
            served = load_served(self.store, OutputRef.model_validate(version.output))
        except NotServable as exc:
            self._refused[version.key] = f"version {version.key} cannot serve predictions: {exc}"
            raise
        try:
            loaded = Loaded(version, served)
        except BaseException:
            served.close()  # what it holds outside the process (a JVM) goes with it
            raise
        self._loaded[version.key] = loaded
        while len(self._loaded) > self.keep:
            self._loaded.popitem(last=False)[1].close()
        return loaded

    def predict(self, loaded: Loaded, call: PredictCall, payload: bytes, load_s: float) -> tuple[WorkerAnswer, bytes]:
        classifier = loaded.served.classifier
        want_probabilities = classifier if call.probabilities is None else call.probabilities
        if want_probabilities and not classifier:
            raise Refused(422, f"version {loaded.version.key} is not a classifier: it has no class probabilities")
        quick = loaded.numbers is not None and call.format == JSON_FORMAT
        array = number_rows(payload, loaded.numbers, call.max_rows) if quick and loaded.numbers else None
        extras: dict[str, Any] = {}
        ids = None
        began = time.perf_counter()
        if array is not None:
            answer = loaded.served.predict_array(array, want_probabilities)
            predict_s = time.perf_counter() - began
            rows = pd.DataFrame(array, columns=loaded.numbers) if self.log.rate > 0 else array
        else:
            frame, extras = decode(call.format, payload, call.max_rows, call.series)
            rows, ids = loaded.rows(frame, matrix=bool(extras.get("matrix")))
            began = time.perf_counter()
            answer = loaded.served.predict(rows, want_probabilities)
            predict_s = time.perf_counter() - began
        predictions, probabilities, classes = answer.predictions, answer.probabilities, answer.classes
        if len(predictions) != len(rows):
            raise Refused(422, f"the model answered {len(predictions)} predictions for {len(rows)} rows")
        self.log.add(
            loaded.version.model, loaded.version.version, rows, predictions, probabilities, classes, call.request_id
        )
        if call.format == V2_FORMAT:
            body = v2_answer(loaded.version, predictions, probabilities, classes, extras, ids)
        else:
            result: dict[str, Any] = {
                "model": loaded.version.model,
                "version": loaded.version.version,
                "task": loaded.served.task,
                "rows": len(rows),
                "predictions": predictions.tolist(),
                "classes": classes,
                "probabilities": None if probabilities is None else probabilities.tolist(),
            }
            if ids is not None:
                result["ids"] = ids
            body = {"result": result}
        worker_answer = WorkerAnswer(status=200, load_s=load_s, predict_s=predict_s, rows=len(rows))
        return worker_answer, _json_bytes(body)

    def close(self) -> None:
        """Flush the prediction logs and release every loaded version (a JVM it holds...)."""
        self.log.close()
        while self._loaded:
            self._loaded.popitem(last=False)[1].close()


def v2_answer(
    version: ServedVersion,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    classes: list[Any] | None,
    extras: dict[str, Any],
    ids: list[Any] | None = None,
) -> dict[str, Any]:
    """An Open Inference Protocol answer: ``predict`` (the labels or values) and, for a classifier,
    ``predict_proba`` (rows x classes, in the order of the version's metadata ``classes`` parameter); ``id``
    when the rows came in another input form (the series each answer is about)."""
    outputs = [_tensor("predict", predictions)]
    if probabilities is not None:
        outputs.append({**_tensor("predict_proba", probabilities), "parameters": {"classes": classes}})
    if ids is not None:
        outputs.append(_tensor("id", np.asarray([str(i) for i in ids], dtype=object)))
    wanted = extras.get("outputs")
    if wanted:
        outputs = [o for o in outputs if o["name"] in wanted]
    answer: dict[str, Any] = {"model_name": version.model, "model_version": str(version.version), "outputs": outputs}
    if "id" in extras:
        answer["id"] = extras["id"]
    return answer


def _tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    kind = values.dtype.kind
    datatype = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind, "BYTES")
    data = values.ravel().tolist() if datatype != "BYTES" else [str(v) for v in values.ravel().tolist()]
    return {"name": name, "shape": list(values.shape), "datatype": datatype, "data": data}


def _json_bytes(body: dict[str, Any]) -> bytes:
    if orjson is not None:
        try:
            return bytes(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))  # NaN and infinity: null
        except TypeError:  # a value orjson does not know: the standard library's way below
            pass
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":"), default=str).encode()
    except ValueError:  # NaN or infinity in an answer: null, as JSON has no such numbers
        return json.dumps(_finite(body), separators=(",", ":"), default=str).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def main() -> None:
    answers: IO[bytes] = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever a library prints goes to the log, never into the answers
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the API's to handle
    store = ArtifactStore(os.environ["ORCHESTRA_ARTIFACT_URL"])
    keep = int(os.environ.get("ORCHESTRA_SERVING_LOADED", "8"))
    log = PredictionLog(store, float(os.environ.get("ORCHESTRA_PREDICTION_LOG_RATE", "0")))
    server = Server(store, keep, log)
    pd.DataFrame({"warm": [1]})  # pandas' lazy first-use work, before the first request
    answers.write(encode(WorkerAnswer(status=200)))
    stdin = sys.stdin.buffer
    while True:
        frame = read_frame(stdin)
        if frame is None:
            server.close()
            return
        header, payload = frame
        began = time.perf_counter()
        try:
            call = PredictCall.model_validate(header)
            answer, body = server.handle(call, payload)
        except Exception:  # noqa: BLE001 -- a bad frame is answered, never the end of the worker
            traceback.print_exc()
            answer, body = WorkerAnswer(status=400, error="the serving worker could not read the request"), b""
        answer.handle_s = time.perf_counter() - began
        answers.write(encode(answer, body))
        if header.get("op") == STOP:
            return


if __name__ == "__main__":
    main()
