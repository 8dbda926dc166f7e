"""JSON from the outside world (webhook bodies, widget frames, console requests): malformed, non-UTF-8 or too
deeply nested input is refused with BadJson — the caller answers 400 — instead of an exception escaping as a 500
(Python's json raises RecursionError on deep nesting)."""
from __future__ import annotations

import json
from typing import Any, List, Mapping, Union

MAX_DEPTH = 32


class BadJson(ValueError):
    """Not JSON we accept."""


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(raw: Union[bytes, str], max_depth: int = MAX_DEPTH) -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        raise BadJson(f"malformed JSON ({type(error).__name__})") from None
    if nesting_depth(value) > max_depth:
        raise BadJson(f"JSON nested deeper than {max_depth} levels")
    return value


def parse_json_object(raw: Union[bytes, str], max_depth: int = MAX_DEPTH) -> dict:
    value = parse_json(raw, max_depth)
    if not isinstance(value, dict):
        raise BadJson("a JSON object is required")
    return value


def mapping(value: Any) -> Mapping:
    """`value` if it is a JSON object, else an empty one: a webhook body's parts in any shape read safely."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> List:
    """`value` if it is a JSON list, else an empty one."""
    return value if isinstance(value, list) else []
