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
