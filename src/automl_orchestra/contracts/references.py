"""Parameter references: ``"$step"``, ``"$step.attr"`` (``.attr`` may repeat) and ``"$$"`` escapes.

A value is a reference only when the whole string matches the grammar; a string that starts with a single
``$`` but does not match is refused, so a typo never silently becomes a literal.

Attribute segments may start with ``_`` here (a table may have an ``_index`` column), but such a segment is
refused at POST unless the referenced output lists it as a column or key, and the worker reads it only as a
key or column, never with ``getattr`` (``contracts/code_policy.py``, ``docs/security.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,127}"
NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
_REF_RE = re.compile(rf"^\$({NAME_PATTERN})((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$")


class ReferenceError_(ValueError):
    """A malformed reference string."""


@dataclass(frozen=True)
class Reference:
    step: str
    attrs: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "$" + ".".join((self.step, *self.attrs))


def parse(value: str) -> Reference | None:
    """Return the reference a string denotes, ``None`` for a literal; raise on a malformed reference."""
    if not value.startswith("$") or value.startswith("$$"):
        return None
    match = _REF_RE.match(value)
    if match is None:
        raise ReferenceError_(
            f"{value!r} is not a valid reference: use '$step' or '$step.attribute' "
            "(step names match [A-Za-z][A-Za-z0-9_-]*), or '$$' for a literal dollar"
        )
    attrs = tuple(a for a in match.group(2).split(".") if a)
    return Reference(match.group(1), attrs)


def iter_references(value: Any) -> Iterator[Reference]:
    """Every reference in a JSON-like value, nested lists and dicts included (dict keys are literal)."""
    if isinstance(value, str):
        ref = parse(value)
        if ref is not None:
            yield ref
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_references(item)


def substitute(value: Any, resolve: Callable[[Reference], Any]) -> Any:
    """Replace references with ``resolve(ref)`` and unescape ``$$`` literals, recursively."""
    if isinstance(value, str):
        if value.startswith("$$"):
            return value[1:]
        ref = parse(value)
        return value if ref is None else resolve(ref)
    if isinstance(value, dict):
        return {key: substitute(item, resolve) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(item, resolve) for item in value]
    return value


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))
