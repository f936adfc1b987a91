"""User-facing errors. The CLI prints them as one line and exits non-zero (see cli.EXIT_CODES)."""

from __future__ import annotations

from typing import Any


class Na64Error(Exception):
    """Base class for errors the CLI reports as one line naming file and field."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.field) if p)
        return f"{where}: {self.message}" if where else self.message


class InputError(Na64Error):
    """Bad user input: a config/summary/datasets file that fails validation, a bad option value."""

    exit_code = 2


class DataError(Na64Error):
    """Bad event data: missing branch, truncated or non-ROOT file, empty tree."""

    exit_code = 3


class OutputError(Na64Error):
    """The output folder cannot be used (exists with foreign content, not writable)."""

    exit_code = 4


# pydantic puts the tried union member into the error location (e.g. "float", "MassCurve", "list[...]"):
# not a field name the user wrote, so it is dropped from the reported path.
_UNION_TAGS = frozenset({"float", "int", "str", "bool", "list", "dict", "tuple", "MassCurve"})
_UNION_TAG_PREFIXES = ("list[", "dict[", "tuple[", "constrained-", "function-", "json-or-python[")


def is_union_tag(part: Any) -> bool:
    """True for a pydantic union-member tag in an error location, never for a field name the user wrote
    (``interpretation`` or ``integral`` are fields; ``int`` and ``list[float]`` are tags).

    Examples:
        >>> [is_union_tag(p) for p in ("int", "list[float]", "constrained-float", "interpretation", 3)]
        [True, True, True, False, False]
    """
    return isinstance(part, str) and (part in _UNION_TAGS or part.startswith(_UNION_TAG_PREFIXES))


def _loc(problem: dict[str, Any]) -> str:
    return ".".join(str(p) for p in problem["loc"] if not is_union_tag(p))


def from_validation(err: Any, *, file: str | None = None) -> InputError:
    """One InputError from a pydantic ValidationError listing every problem on one line: the first problem
    at the field path the user wrote, then, when there are more, all of them ("missing fields: a, b, c";
    other problems as "field: message"), so a hand-written file is fixed in one go.

    Examples:
        >>> from pydantic import BaseModel
        >>> class M(BaseModel):
        ...     a: int
        ...     b: int
        ...     c: float
        >>> try:
        ...     M.model_validate({"c": "x"})
        ... except Exception as e:
        ...     print(from_validation(e, file="f.json").message[:56])
        Field required; 3 problems: missing fields: a, b; c: Inp
    """
    problems = err.errors()
    first = problems[0]
    loc = _loc(first)
    msg = first["msg"].removeprefix("Value error, ")
    if len(problems) > 1:
        missing = [_loc(p) or "(top level)" for p in problems if p.get("type") == "missing"]
        other = [f"{_loc(p) or '(top level)'}: {p['msg'].removeprefix('Value error, ')}"
                 for p in problems if p.get("type") != "missing"]
        parts = ([f"missing fields: {', '.join(missing)}"] if missing else []) + other
        msg += f"; {len(problems)} problems: " + "; ".join(parts)
    return InputError(msg, file=file, field=loc or None)
