"""JSON from clients, checked once for what the database and our code cannot take.

PostgreSQL refuses NUL characters in text and JSONB, UTF-8 cannot encode lone
surrogates, JSONB has no NaN/Infinity, and deep nesting exhausts Python's recursion.
``check_json`` walks a parsed document iteratively (no recursion) and names the first
offending path, e.g. ``metadata.tags[2]``; every JSON body (the parser), JSON text in
forms and decoded cursors go through it.
"""

import json
import math

MAX_DEPTH = 32


class UnsafeJSON(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path, self.message = path, message


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return "Must not contain NUL characters."
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "Must be valid Unicode (no lone surrogates)."
    return None


def check_json(value, *, path: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Raises ``UnsafeJSON`` for NUL, lone surrogates or non-finite numbers anywhere (keys
    included) or nesting deeper than ``max_depth``."""
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise UnsafeJSON(where, problem)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeJSON(where, "Must be a finite number.")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnsafeJSON(where, f"Nested deeper than {max_depth} levels.")
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = text_problem(key)
                    if problem:
                        raise UnsafeJSON(where, f"Key {key!r}: {problem}")
                    stack.append((child, f"{where}.{key}" if where else key, depth + 1))
            else:
                stack.extend((child, f"{where}[{index}]", depth + 1) for index, child in enumerate(item))


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes, *, path: str = ""):
    """``json.loads`` that refuses NaN/Infinity, survives absurd nesting and checks the result.
    Raises ``ValueError`` (``UnsafeJSON`` for content problems)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UnsafeJSON(path, f"Nested deeper than {MAX_DEPTH} levels.") from None
    check_json(value, path=path)
    return value


def dumps(value) -> bytes:
    """Compact UTF-8 JSON, as sizes are counted."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
