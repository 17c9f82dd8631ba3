"""The reference grammar: exact match only, nested values, escapes, clear errors."""

from __future__ import annotations

import pytest

from automl_orchestra.contracts import references
from automl_orchestra.contracts.references import Reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$train", Reference("train")),
        ("$train.Survived", Reference("train", ("Survived",))),
        ("$load.data.x_train", Reference("load", ("data", "x_train"))),
        ("$a-b_c", Reference("a-b_c")),
        ("plain", None),
        ("$$literal", None),
        ("costs $5", None),
    ],
)
def test_parse(text: str, expected: Reference | None) -> None:
    assert references.parse(text) == expected


@pytest.mark.parametrize("text", ["$", "$1abc", "$a b", "$a.", "$a..b", "$a.1x", "$a/b"])
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(references.ReferenceError_, match="not a valid reference"):
        references.parse(text)


def test_nested_references_and_substitution() -> None:
    value = {"x": "$a", "y": ["$b.k", {"z": "$$a"}, 3], "$c": "key is literal"}
    assert [r.text for r in references.iter_references(value)] == ["$a", "$b.k"]
    resolved = references.substitute(value, lambda ref: ref.text.upper())
    assert resolved == {"x": "$A", "y": ["$B.K", {"z": "$a"}, 3], "$c": "key is literal"}


def test_names() -> None:
    assert references.is_valid_name("train_1-x")
    assert not references.is_valid_name("1train")
    assert not references.is_valid_name("a" * 129)
    assert not references.is_valid_name("../etc")


def test_private_segments_parse_but_are_checked_at_post_and_in_the_worker() -> None:
    """``_``-names parse (a table may have an ``_index`` column); the POST check allows them only as a column
    or key the parent lists, and the worker only ever reads them as a key or column, never with getattr."""
    import pandas as pd

    from automl_orchestra.contracts.errors import StepError
    from automl_orchestra.engines.core.base import _get_attribute
    from automl_orchestra.steps.errors import InvalidRequest
    from automl_orchestra.steps.service import _check_attribute
    from automl_orchestra.store.models import Step

    assert references.parse("$t._index") == Reference("t", ("_index",))
    table = Step(name="t", output={"kind": "table", "attributes": ["_index", "x"]})
    _check_attribute(table, Reference("t", ("_index",)))
    model = Step(name="m", output={"kind": "object"})
    pending = Step(name="p", output=None)
    for parent, attrs in [
        (table, ("_index", "__class__")),
        (table, ("__class__",)),
        (model, ("__init__", "__globals__")),
        (model, ("_private",)),
        (pending, ("_index",)),
    ]:
        with pytest.raises(InvalidRequest, match="private or dunder"):
            _check_attribute(parent, Reference(parent.name, attrs))
    frame = pd.DataFrame({"_index": [0, 1], "x": [1, 2]})
    assert list(_get_attribute(frame, "_index", "t._index")) == [0, 1]
    assert _get_attribute({"_k": 1}, "_k", "j._k") == 1
    for value, attr in [(frame, "__class__"), (frame, "_data"), (object(), "__init__")]:
        with pytest.raises(StepError, match="private or dunder"):
            _get_attribute(value, attr, f"s.{attr}")
