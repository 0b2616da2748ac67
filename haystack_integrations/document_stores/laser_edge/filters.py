"""Haystack filters as Qdrant Edge filters, with Haystack's semantics.

The payload is laid out as qdrant-haystack lays it out (``Document.to_dict(flatten=False)``), so a Haystack field
``"meta.genre"`` is the payload path ``meta.genre``. Where qdrant-haystack departs from Haystack's semantics this
module does not: ``NOT`` negates the conjunction of its conditions, ``None`` compares as Haystack compares it
(``==``/``!=`` test for a missing or null value, ordering comparisons with ``None`` match nothing), ``in []``
matches nothing, and ``==`` on a float matches numerically. A comparison Qdrant cannot express (equality with a
list or a dict) raises :class:`~haystack.errors.FilterError` instead of returning a wrong answer.
"""

from __future__ import annotations

from typing import Any

from haystack.errors import FilterError

from laser_integrations import edge
from laser_integrations.edge import require_edge

_COMPARISONS = ("==", "!=", ">", ">=", "<", "<=", "in", "not in")
_LOGICAL = ("AND", "OR", "NOT")


def convert_filters(filters: dict[str, Any] | Any | None) -> Any:
    """A Haystack filter dict as a ``qdrant_edge.Filter``; a native Edge ``Filter`` passes through; ``None``/{} -> None.

    Raises:
        FilterError: the filter is malformed or asks for a comparison Qdrant cannot make.
    """
    qe = require_edge()
    if filters is None or isinstance(filters, qe.Filter):
        return filters
    if not isinstance(filters, dict):
        msg = (
            "Filters must be a dictionary (Haystack's filter syntax) or a qdrant_edge.Filter, got "
            f"{type(filters).__name__}."
        )
        raise FilterError(msg)
    if not filters:
        return None
    condition = _condition(filters)
    return condition if isinstance(condition, qe.Filter) else qe.Filter(must=[condition])


def _condition(item: dict[str, Any]) -> Any:
    if not isinstance(item, dict):
        msg = f"Each filter condition must be a dictionary, got {item!r}."
        raise FilterError(msg)
    operator = item.get("operator")
    if operator is None:
        msg = f"Operator not found in filter condition {item!r}."
        raise FilterError(msg)
    if operator in _LOGICAL:
        return _logical(operator, item)
    if operator in _COMPARISONS:
        if "field" not in item or "value" not in item:
            msg = f"'field' or 'value' not found for '{operator}' in filter condition {item!r}."
            raise FilterError(msg)
        return _comparison(operator, item["field"], item["value"])
    msg = f"Unknown operator {operator!r} in filters; use one of {list(_COMPARISONS + _LOGICAL)}."
    raise FilterError(msg)


def _logical(operator: str, item: dict[str, Any]) -> Any:
    qe = require_edge()
    conditions = item.get("conditions")
    if not conditions:
        msg = f"'conditions' not found for '{operator}' in filter {item!r}."
        raise FilterError(msg)
    if not isinstance(conditions, list):
        msg = f"'conditions' of '{operator}' must be a list, got {type(conditions).__name__}."
        raise FilterError(msg)
    converted = [_condition(c) for c in conditions]
    if operator == "AND":
        return qe.Filter(must=converted)
    if operator == "OR":
        return qe.Filter(should=converted)
    # Haystack's NOT negates the AND of its conditions (not each of them, as qdrant-haystack's must_not does).
    return qe.Filter(must_not=[qe.Filter(must=converted)])


def _comparison(operator: str, field: str, value: Any) -> Any:
    qe = require_edge()
    try:
        if operator == "==":
            return edge.equal(field, value)
        if operator == "!=":
            return qe.Filter(must_not=[edge.equal(field, value)])
        if operator in ("in", "not in"):
            if not isinstance(value, list):
                msg = f"The value of '{operator}' on {field!r} must be a list, got {type(value).__name__} {value!r}."
                raise FilterError(msg)
            if not value:
                return edge.nothing() if operator == "in" else qe.Filter()
            equals = [edge.equal(field, v) for v in value]
            return qe.Filter(should=equals) if operator == "in" else qe.Filter(must_not=equals)
        return edge.ordering(operator, field, value)
    except ValueError as e:
        raise FilterError(str(e)) from e
