"""transform/projection, transform/dataType and explore/histogram on stored tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl_orchestra.contracts.errors import StepError
from tests.engines.conftest import Harness


@pytest.fixture
def people(harness: Harness) -> Harness:
    harness.put(
        "people",
        pd.DataFrame(
            {
                "Name": ["ann", "bob", "cy", "dee", "ed", "fay"],
                "Age": ["31", "", "47", "19", "abc", "52"],
                "Score": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
                "Member": ["yes", "no", "Y", "0", "1", None],
                "City": ["Rome", "Oslo", "Rome", "Rome", "Oslo", None],
            }
        ),
    )
    return harness


def test_projection_keeps_the_requested_order(people: Harness) -> None:
    ran = people.run(
        "transform", "projection", {"parentName": "people", "fields": ["Score", "Name"]}, inputs=["people"]
    )
    assert ran.metadata["fields"] == ["Score", "Name"] and ran.metadata["rowCount"] == 6
    assert ran.metadata["types"] == {"Score": "number", "Name": "string"}
    assert list(ran.load().columns) == ["Score", "Name"]


def test_projection_unknown_field(people: Harness) -> None:
    with pytest.raises(StepError, match=r"unknown field\(s\) \['Nope'\]; available fields: \['Name', 'Age'"):
        people.run("transform", "projection", {"parentName": "people", "fields": ["Name", "Nope"]}, inputs=["people"])


def test_projection_needs_a_table_input(people: Harness) -> None:
    people.put("numbers", np.arange(3))
    with pytest.raises(StepError, match="holds a array, not a table"):
        people.run("transform", "projection", {"parentName": "numbers", "fields": ["a"]}, inputs=["numbers"])
    with pytest.raises(StepError, match="not an input"):
        people.run("transform", "projection", {"parentName": "other", "fields": ["a"]})


def test_data_type_casts(people: Harness) -> None:
    params = {"parentName": "people", "types": {"Member": "boolean", "Score": "string", "City": "string"}}
    ran = people.run("transform", "dataType", params, inputs=["people"])
    assert ran.metadata["types"]["Member"] == "boolean" and ran.metadata["types"]["Score"] == "string"
    frame = ran.load()
    assert frame["Member"].tolist() == [True, False, True, False, True, None]
    assert frame["Score"].tolist()[:2] == ["1", "2"]


def test_data_type_integer_from_text_and_whole_floats(harness: Harness) -> None:
    harness.put("t", pd.DataFrame({"a": [" 1", "2.0", "", None], "b": [1.0, np.nan, 3.0, 4.0]}))
    ran = harness.run(
        "transform", "dataType", {"parentName": "t", "types": {"a": "integer", "b": "integer"}}, inputs=["t"]
    )
    assert ran.metadata["arrowTypes"] == {"a": "int64", "b": "int64"}
    frame = ran.load()
    assert frame["a"].tolist()[:2] == [1.0, 2.0] and frame["a"].isna().tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    ("types", "message"),
    [
        ({"Age": "number"}, r"cannot cast column 'Age' to number: row 4 has value 'abc'"),
        ({"Score": "integer"}, None),
        ({"Name": "boolean"}, r"cannot cast column 'Name' to boolean: row 0 has value 'ann'"),
        ({"Nope": "number"}, r"unknown field\(s\) \['Nope'\]"),
        ({"Age": "complex"}, r"field 'Age': unknown type 'complex'"),
    ],
)
def test_data_type_failures_name_column_row_and_value(people: Harness, types: dict, message: str | None) -> None:
    params = {"parentName": "people", "types": types}
    if message is None:  # Score holds 1.0, 2.0, NaN (missing), 4.0...: all whole numbers
        assert people.run("transform", "dataType", params, inputs=["people"]).metadata["types"]["Score"] == "integer"
        return
    with pytest.raises(StepError, match=message):
        people.run("transform", "dataType", params, inputs=["people"])


def test_integer_refuses_fractions(harness: Harness) -> None:
    harness.put("t", pd.DataFrame({"x": [1.0, 2.0, 2.5]}))
    with pytest.raises(StepError, match=r"cannot cast column 'x' to integer: row 2 has value 2.5"):
        harness.run("transform", "dataType", {"parentName": "t", "types": {"x": "integer"}}, inputs=["t"])


def test_histogram_counts(harness: Harness) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=1000)
    values[:10] = np.nan
    cities = [f"c{i % 150}" for i in range(1000)]  # 150 categories: 100 listed, the rest "__other__"
    harness.put("d", pd.DataFrame({"v": values, "city": cities, "flag": [True, False] * 500}))
    ran = harness.run("explore", "histogram", {"parentName": "d", "bins": 7}, inputs=["d"])
    table = ran.load()
    assert ran.metadata["fields"] == ["v", "city", "flag"]
    assert ran.metadata["nulls"] == {"v": 10, "city": 0, "flag": 0}
    bins = table[table["field"] == "v"]
    assert len(bins) == 7 and bins["count"].sum() == 990 and (bins["kind"] == "bin").all()
    expected, _ = np.histogram(values[10:], bins=7)
    assert bins["count"].tolist() == expected.tolist()
    assert bins["value"].iloc[-1].endswith("]") and bins["value"].iloc[0].endswith(")")
    city = table[table["field"] == "city"]
    assert len(city) == 101 and city["value"].iloc[-1] == "__other__"
    assert city["count"].sum() == 1000 and city["lower"].isna().all()
    flag = table[table["field"] == "flag"].set_index("value")["count"].to_dict()
    assert flag == {"false": 500, "true": 500}


def test_histogram_field_subset_and_unknown_field(harness: Harness) -> None:
    harness.put("d", pd.DataFrame({"a": [1, 1, 1], "b": ["x", "y", "x"]}))
    table = harness.run("explore", "histogram", {"parentName": "d", "fields": ["a"]}, inputs=["d"]).load()
    assert table["count"].sum() == 3 and set(table["field"]) == {"a"}
    with pytest.raises(StepError, match="unknown field"):
        harness.run("explore", "histogram", {"parentName": "d", "fields": ["zz"]}, inputs=["d"])


def test_split_reads_the_fields_the_server_wrote(harness: Harness) -> None:
    frame = pd.DataFrame({"x": range(40), "y": ["a", "b"] * 20})
    harness.put("rows", frame)
    params = {"parentName": "rows", "target": "y", "task": "classification", "holdout": 0.25, "seed": 3}
    ran = harness.run("transform", "split", params, name="rows_split", inputs=["rows"])
    assert (ran.metadata["trainRows"], ran.metadata["holdoutRows"], ran.metadata["seed"]) == (30, 10, 3)
    assert ran.load()["y"].value_counts().to_dict() == {"a": 15, "b": 15}  # stratified on the target
    with pytest.raises(StepError, match="target 'z' is not a column of 'rows'"):
        harness.run("transform", "split", {**params, "target": "z"}, name="bad_split", inputs=["rows"])
    with pytest.raises(StepError, match="do not fit transform/split: holdout"):
        harness.run("transform", "split", {**params, "holdout": 2}, name="bad_split", inputs=["rows"])


def test_projection_casts_the_types_it_is_given(people: Harness) -> None:
    """Learning Orchestra's in-place dataType on a projection re-runs it with ``types``."""
    params = {"parentName": "people", "fields": ["Name", "Score", "City"], "types": {"Score": "string"}}
    ran = people.run("transform", "projection", params, inputs=["people"])
    assert ran.metadata["types"] == {"Name": "string", "Score": "string", "City": "string"}
    assert ran.load()["Score"].tolist()[:2] == ["1", "2"]
    with pytest.raises(StepError, match=r"unknown field\(s\) \['Age'\]"):
        people.run("transform", "projection", {**params, "types": {"Age": "number"}}, inputs=["people"])
    # no rows: the cast types still make the schema
    people.put("nobody", pd.DataFrame({"Score": pd.Series([], dtype=float)}))
    empty = people.run(
        "transform", "projection", {**params, "parentName": "nobody", "fields": ["Score"]}, inputs=["nobody"]
    )
    assert empty.metadata["types"] == {"Score": "string"} and empty.metadata["rowCount"] == 0
