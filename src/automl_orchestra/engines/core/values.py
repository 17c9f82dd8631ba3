"""The builtin serializer: how a step's Python value becomes files in its output folder, and back.

File formats are chosen so that data crosses engine environments and languages (Parquet, ``.npy``/``.npz``
without pickles, JSON); only what has no such form (a fitted model) is pickled with joblib, together with a
``summary.json`` that says what it is and which library versions wrote it, because a pickle is only
loadable by compatible versions and a user must be able to tell why it no longer loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.outputs import (
    ARRAY_FILE,
    ARRAYS_FILE,
    JSON_FILE,
    OBJECT_FILE,
    SUMMARY_FILE,
    TABLE_FILE,
    OutputKind,
    OutputRef,
    json_safe,
)
from automl_orchestra.engines.core import tables

_REPR_LIMIT = 2000
# (label shown to users, module name in sys.modules)
_VERSIONED_LIBRARIES = (
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("scikit-learn", "sklearn"),
    ("lightgbm", "lightgbm"),
    ("xgboost", "xgboost"),
    ("flaml", "flaml"),
)


# ----- saving -------------------------------------------------------------------------------------


def save_value(value: Any, out_dir: Path) -> OutputRef:
    """Write ``value`` into ``out_dir`` and describe it.

    Files already in ``out_dir`` (a plot an ``explore`` step wrote, files a builder copied) are kept and
    listed, so a step can return a small JSON value that points at them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    kind, attributes = _write(value, out_dir)
    return OutputRef(kind=kind, prefix="", files=list_files(out_dir), attributes=attributes)


def _write(value: Any, out_dir: Path) -> tuple[OutputKind, list[str] | None]:
    if isinstance(value, pd.Series):
        value = value.to_frame(name=str(value.name) if value.name is not None else "value")
    if isinstance(value, pd.DataFrame):
        table = frame_to_arrow(value)
        write_table(table, out_dir / TABLE_FILE)
        write_json(out_dir / SUMMARY_FILE, tables.table_summary(table.schema, table.num_rows))
        return "table", list(table.schema.names)
    if isinstance(value, np.ndarray):
        array = _storable_array(value)
        if array is not None:
            np.save(out_dir / ARRAY_FILE, array, allow_pickle=False)
            write_json(out_dir / SUMMARY_FILE, _array_summary(array))
            return "array", None
    arrays = _storable_array_dict(value)
    if arrays is not None:
        _write_npz(out_dir / ARRAYS_FILE, arrays)
        summary = {"kind": "arrays", "arrays": {name: _array_summary(a) for name, a in arrays.items()}}
        write_json(out_dir / SUMMARY_FILE, summary)
        return "arrays", list(arrays)
    try:
        document = to_json_value(value)
    except NotJsonError:
        _write_object(value, out_dir)
        return "object", None
    write_json(out_dir / JSON_FILE, document)
    return "json", [str(key) for key in document] if isinstance(document, dict) else None


def list_files(out_dir: Path) -> list[str]:
    """Every regular file under ``out_dir``, as sorted ``/``-separated relative paths."""
    return sorted(path.relative_to(out_dir).as_posix() for path in out_dir.rglob("*") if path.is_file())


def write_json(path: Path, document: Any) -> None:
    """Strict JSON, cut at ``MAX_OUTPUT_DEPTH`` levels so the API can always read and serve it back."""
    text = json.dumps(json_safe(document), indent=1, allow_nan=False, default=str)
    path.write_text(text, encoding="utf-8")


# ----- tables -------------------------------------------------------------------------------------


def frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A DataFrame as an Arrow table with string, unique column names and a meaningful index kept."""
    frame = _index_as_columns(frame)
    frame.columns = pd.Index(_unique_names(frame.columns))
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed-type object columns (ints and strings, say) have no Arrow type: store them as text
        # rather than refusing the whole result of, e.g., a user function.
        return pa.Table.from_pandas(_stringify_mixed_columns(frame), preserve_index=False)


def write_table(table: pa.Table, path: Path) -> None:
    pq.write_table(table, str(path), row_group_size=tables.ROW_GROUP_SIZE)


def _index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    # A RangeIndex carries no information (it is rebuilt on load); any other index (a sample's row
    # labels, a group key) would be lost by Parquet without pandas metadata, so it becomes columns.
    if isinstance(frame.index, pd.RangeIndex):
        return frame.copy(deep=False)  # shallow: renaming columns must not touch the caller's frame
    taken = {str(column) for column in frame.columns}
    names = []
    for level, name in enumerate(frame.index.names):
        candidate = str(name) if name is not None else ("index" if frame.index.nlevels == 1 else f"level_{level}")
        while candidate in taken:
            candidate = f"_{candidate}"
        taken.add(candidate)
        names.append(candidate)
    return frame.reset_index(names=names)


def _unique_names(columns: pd.Index) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for column in columns:
        name = "_".join(map(str, column)) if isinstance(column, tuple) else str(column)
        candidate, suffix = name, 1
        while candidate in seen:
            candidate, suffix = f"{name}.{suffix}", suffix + 1
        seen.add(candidate)
        names.append(candidate)
    return names


def _stringify_mixed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for name in frame.columns:
        if frame[name].dtype != object:
            continue
        try:
            pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame[name] = [None if _is_missing(item) else str(item) for item in frame[name]]
    return frame


def _is_missing(item: Any) -> bool:
    return item is None or (isinstance(item, float) and math.isnan(item)) or item is pd.NA


# ----- arrays -------------------------------------------------------------------------------------


def _storable_array(array: np.ndarray) -> np.ndarray | None:
    """``array`` in a pickle-free dtype, or None when it has none (objects other than strings)."""
    if not array.dtype.hasobject:
        return array
    if all(isinstance(item, str) for item in array.flat):
        return array.astype(str)  # e.g. class labels predicted from string targets
    return None


def _storable_array_dict(value: Any) -> dict[str, np.ndarray] | None:
    if not isinstance(value, dict) or not value:
        return None
    if not all(isinstance(key, str) and isinstance(item, np.ndarray) for key, item in value.items()):
        return None
    arrays = {key: _storable_array(item) for key, item in value.items()}
    if any(item is None for item in arrays.values()):
        return None
    return {key: item for key, item in arrays.items() if item is not None}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Written by hand rather than with np.savez(**arrays): keys such as "file" or "allow_pickle" would
    # collide with np.savez's own parameters.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _array_summary(array: np.ndarray) -> dict[str, Any]:
    return {"kind": "array", "shape": list(array.shape), "dtype": str(array.dtype)}


# ----- JSON ---------------------------------------------------------------------------------------


class NotJsonError(Exception):
    """The value has no faithful JSON form."""


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON (numpy scalars converted, NaN/inf as null) or :class:`NotJsonError`."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise NotJsonError("dict keys must be strings")
        return {key: to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    raise NotJsonError(type(value).__name__)


def readable_json(value: Any, limit: int = 200) -> Any:
    """Like :func:`to_json_value` but never fails: what has no JSON form is shown by its ``repr``.

    For metadata (estimator parameters and the like), where a readable description beats an error.
    """
    try:
        return to_json_value(value)
    except NotJsonError:
        pass
    if isinstance(value, dict):
        return {str(key): readable_json(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [readable_json(item, limit) for item in value]
    if isinstance(value, np.ndarray) and value.size <= 100:
        return readable_json(value.tolist(), limit)
    return _short_repr(value, limit)


def _short_repr(value: Any, limit: int) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not fail a step with a good value
        text = f"<{type(value).__name__}: repr failed: {exc}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----- objects ------------------------------------------------------------------------------------


def _write_object(value: Any, out_dir: Path) -> None:
    import joblib

    try:
        joblib.dump(value, out_dir / OBJECT_FILE, compress=3)
    except Exception as exc:
        (out_dir / OBJECT_FILE).unlink(missing_ok=True)
        raise StepError(f"the step's result ({type(value).__name__}) cannot be saved: {exc}") from exc
    write_json(out_dir / SUMMARY_FILE, object_summary(value))


def object_summary(value: Any) -> dict[str, Any]:
    kind = type(value)
    return {
        "kind": "object",
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "repr": _short_repr(value, _REPR_LIMIT),
        "libraryVersions": library_versions(),
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickle may depend on; only already-imported ones (importing costs)."""
    versions = {"python": platform.python_version()}
    for label, module_name in _VERSIONED_LIBRARIES:
        module = sys.modules.get(module_name)
        version = getattr(module, "__version__", None) if module is not None else None
        if isinstance(version, str):
            versions[label] = version
    return versions


# ----- loading ------------------------------------------------------------------------------------


def load_value(ref: OutputRef, local_dir: Path) -> Any:
    """The Python value of a stored output (a file output is its local path)."""
    if ref.kind == "table":
        return pd.read_parquet(local_dir / TABLE_FILE)
    if ref.kind == "array":
        return np.load(local_dir / ARRAY_FILE, allow_pickle=False)
    if ref.kind == "arrays":
        with np.load(local_dir / ARRAYS_FILE, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    if ref.kind == "json":
        return json.loads((local_dir / JSON_FILE).read_text(encoding="utf-8"))
    if ref.kind == "object":
        import joblib

        from automl_orchestra.engines.core.legacy import load_moved

        return load_moved(lambda: joblib.load(local_dir / OBJECT_FILE))
    if ref.kind == "file":
        if not ref.files:
            raise StepError("this file output lists no file")
        return str(local_dir / ref.files[0])
    return None


def output_hash(out_dir: Path) -> str:
    """A content hash of an output folder (names and bytes of every file), for caching and lineage."""
    digest = hashlib.sha256()
    for name in list_files(out_dir):
        path = out_dir / name
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
