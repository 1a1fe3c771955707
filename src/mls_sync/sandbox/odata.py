"""The OData v4 query options RESO Web API servers accept: $filter, $select, $orderby.

`parse_filter` is a recursive-descent parser over a token list that compiles the expression into
a predicate over a record dict: no client text is ever evaluated as Python. It is strict on
purpose (unknown fields, type mismatches, unsupported functions are errors), because a real MLS
answers those with 400, and the sandbox must catch a client that sends what a vendor would reject.

Grammar (lowest precedence first):
    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := Field ("eq"|"ne"|"gt"|"ge"|"lt"|"le") literal
                | Field "in" "(" literal ("," literal)* ")"
    literal    := 'string' ('' escapes a quote) | number | DateTimeOffset | null
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]


class FieldType(Enum):
    """The EDM type of a field; literals must match it (OData servers do not coerce)."""

    STRING = "Edm.String"
    NUMBER = "Edm.Decimal"
    DATETIME = "Edm.DateTimeOffset"


class ODataQueryError(ValueError):
    """A query option the server cannot honour; the server answers 400 with this message."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "datetime" | "number" | "string" | "name" | "punct"
    text: str
    pos: int


# DateTimeOffset must be tried before number: both start with digits.
_TOKEN_RE = re.compile(
    r"""
    (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<string>'(?:[^']|'')*')
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<punct>[(),])
    """,
    re.VERBOSE,
)

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_LITERAL_TYPES = {"string": FieldType.STRING, "number": FieldType.NUMBER}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.lastgroup is None:
            raise ODataQueryError(f"$filter: unexpected character {text[pos]!r} at position {pos}")
        tokens.append(_Token(match.lastgroup, match.group(), pos))
        pos = match.end()
    return tokens


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as exc:
        raise ODataQueryError(f"$filter: invalid DateTimeOffset literal {text}") from exc


class _FilterParser:
    def __init__(self, text: str, fields: Mapping[str, FieldType]) -> None:
        self._tokens = _tokenize(text)
        self._fields = fields
        self._index = 0

    def parse(self) -> Predicate:
        if not self._tokens:
            raise ODataQueryError("$filter is empty")
        predicate = self._or()
        if self._index < len(self._tokens):
            token = self._tokens[self._index]
            raise ODataQueryError(f"$filter: unexpected {token.text!r} at position {token.pos}")
        return predicate

    # -- token helpers ------------------------------------------------------------------------

    def _peek(self) -> _Token | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _next(self, expected: str) -> _Token:
        token = self._peek()
        if token is None:
            raise ODataQueryError(f"$filter ends early: expected {expected}")
        self._index += 1
        return token

    def _accept(self, text: str) -> bool:
        token = self._peek()
        if token is not None and token.kind in ("name", "punct") and token.text == text:
            self._index += 1
            return True
        return False

    def _expect(self, text: str) -> None:
        token = self._next(repr(text))
        if token.text != text:
            raise ODataQueryError(
                f"$filter: expected {text!r} at position {token.pos}, found {token.text!r}"
            )

    # -- grammar ------------------------------------------------------------------------------

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._accept("or"):
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else _any_of(terms)

    def _and(self) -> Predicate:
        terms = [self._unary()]
        while self._accept("and"):
            terms.append(self._unary())
        return terms[0] if len(terms) == 1 else _all_of(terms)

    def _unary(self) -> Predicate:
        if self._accept("not"):
            return _negate(self._unary())
        if self._accept("("):
            inner = self._or()
            self._expect(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        field, field_type = self._field()
        op = self._next("an operator after " + field)
        if op.kind == "name" and op.text == "in":
            values = self._literal_list(field, field_type)
            return _member_of(field, values)
        if op.kind != "name" or op.text not in _COMPARISONS:
            raise ODataQueryError(
                f"$filter: expected an operator (eq ne gt ge lt le in) after {field}, "
                f"found {op.text!r} at position {op.pos}"
            )
        value = self._literal(field, field_type)
        return _compare(field, _COMPARISONS[op.text], op.text, value)

    def _field(self) -> tuple[str, FieldType]:
        token = self._next("a field name")
        if token.kind != "name":
            raise ODataQueryError(
                f"$filter: expected a field name at position {token.pos}, found {token.text!r}"
            )
        if token.text not in self._fields:
            nxt = self._peek()
            if nxt is not None and nxt.text == "(":
                raise ODataQueryError(f"$filter: function {token.text}() is not supported")
            raise ODataQueryError(f"$filter: unknown field {token.text!r}")
        return token.text, self._fields[token.text]

    def _literal_list(self, field: str, field_type: FieldType) -> list[Any]:
        self._expect("(")
        values = [self._literal(field, field_type)]
        while self._accept(","):
            values.append(self._literal(field, field_type))
        self._expect(")")
        return values

    def _literal(self, field: str, field_type: FieldType) -> Any:
        token = self._next("a literal")
        if token.kind == "name" and token.text == "null":
            return None
        literal_type = _LITERAL_TYPES.get(token.kind)
        if token.kind == "datetime":
            literal_type = FieldType.DATETIME
        if literal_type is None:
            raise ODataQueryError(
                f"$filter: expected a literal at position {token.pos}, found {token.text!r}"
            )
        if literal_type is not field_type:
            raise ODataQueryError(
                f"$filter: {field} is {field_type.value} and cannot be compared "
                f"with {token.text} at position {token.pos}"
            )
        return _literal_value(token)


def _literal_value(token: _Token) -> Any:
    if token.kind == "string":
        return token.text[1:-1].replace("''", "'")
    if token.kind == "datetime":
        return _parse_datetime(token.text)
    return float(token.text) if "." in token.text else int(token.text)


# -- predicate builders: closures over already-validated parts ---------------------------------


@dataclass(frozen=True)
class Narrowing:
    """What a filter implies about single fields, so a server can find candidate records by
    an index instead of testing every one (the filter still tests each candidate, so a
    superset is fine): `values` = the field is one of these, `at_least` = the field is >= it."""

    values: Mapping[str, frozenset[Any]] = dataclasses.field(default_factory=dict)
    at_least: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def either(self, other: Narrowing) -> Narrowing:
        """`a or b` narrows only fields both narrow, to the union."""
        values = {f: v | other.values[f] for f, v in self.values.items() if f in other.values}
        lows = {
            f: min(v, other.at_least[f]) for f, v in self.at_least.items() if f in other.at_least
        }
        return Narrowing(values, lows)

    def both(self, other: Narrowing) -> Narrowing:
        """`a and b` narrows every field either narrows, to the intersection."""
        values = dict(other.values)
        for f, v in self.values.items():
            values[f] = v & values[f] if f in values else v
        lows = dict(other.at_least)
        for f, v in self.at_least.items():
            lows[f] = max(v, lows[f]) if f in lows else v
        return Narrowing(values, lows)


NO_NARROWING = Narrowing()


class _Term:
    """A compiled predicate that knows its Narrowing."""

    __slots__ = ("narrowing", "test")

    def __init__(self, test: Predicate, narrowing: Narrowing = NO_NARROWING) -> None:
        self.test = test
        self.narrowing = narrowing

    def __call__(self, record: Record) -> bool:
        return self.test(record)


def narrowing_of(predicate: Predicate) -> Narrowing:
    return predicate.narrowing if isinstance(predicate, _Term) else NO_NARROWING


def _compare(field: str, op: Callable[[Any, Any], bool], name: str, value: Any) -> Predicate:
    def predicate(record: Record) -> bool:
        actual = record.get(field)
        if actual is None or value is None:
            # OData: null equals only null, and every ordering comparison with null is false.
            if name in ("eq", "ne"):
                return (actual is None and value is None) == (name == "eq")
            return False
        return bool(op(actual, value))

    if value is not None and name == "eq":
        return _Term(predicate, Narrowing(values={field: frozenset([value])}))
    if value is not None and name in ("ge", "gt"):
        return _Term(predicate, Narrowing(at_least={field: value}))
    return _Term(predicate)


def _member_of(field: str, values: list[Any]) -> Predicate:
    members = frozenset(values)  # literals are str, number, datetime or null: all hashable

    def predicate(record: Record) -> bool:
        return record.get(field) in members

    return _Term(predicate, Narrowing(values={field: members}))


def _any_of(terms: list[Predicate]) -> Predicate:
    narrowing = narrowing_of(terms[0])
    for term in terms[1:]:
        narrowing = narrowing.either(narrowing_of(term))
    return _Term(lambda record: any(term(record) for term in terms), narrowing)


def _all_of(terms: list[Predicate]) -> Predicate:
    narrowing = narrowing_of(terms[0])
    for term in terms[1:]:
        narrowing = narrowing.both(narrowing_of(term))
    return _Term(lambda record: all(term(record) for term in terms), narrowing)


def _negate(term: Predicate) -> Predicate:
    return _Term(lambda record: not term(record))


# -- public entry points -----------------------------------------------------------------------


def parse_filter(text: str, fields: Mapping[str, FieldType]) -> Predicate:
    """Compile an OData $filter expression into a predicate over a record of Python values."""
    return _FilterParser(text, fields).parse()


def parse_select(text: str, fields: Iterable[str]) -> list[str]:
    """The fields a $select names, in the order given; `*` means every field."""
    known = list(fields)
    names = [name.strip() for name in text.split(",")]
    if names == ["*"]:
        return known
    for name in names:
        if not name:
            raise ODataQueryError("$select: empty field name")
        if name not in known:
            raise ODataQueryError(f"$select: unknown field {name!r}")
    return list(dict.fromkeys(names))


def parse_orderby(text: str, fields: Iterable[str]) -> list[tuple[str, bool]]:
    """`Field [asc|desc], ...` as (field, descending) pairs."""
    known = set(fields)
    keys: list[tuple[str, bool]] = []
    for item in text.split(","):
        parts = item.split()
        if not parts or len(parts) > 2:
            raise ODataQueryError(f"$orderby: cannot parse {item.strip()!r}")
        direction = parts[1] if len(parts) == 2 else "asc"
        if parts[0] not in known:
            raise ODataQueryError(f"$orderby: unknown field {parts[0]!r}")
        if direction not in ("asc", "desc"):
            raise ODataQueryError(f"$orderby: direction must be asc or desc, not {direction!r}")
        keys.append((parts[0], direction == "desc"))
    return keys


def order_records(records: Iterable[Record], keys: list[tuple[str, bool]]) -> list[Record]:
    """Sort by several keys, nulls first in ascending order (OData: null sorts lowest)."""
    ordered = list(records)
    # Stable sorts applied from the least significant key give the combined order.
    for field, descending in reversed(keys):
        ordered.sort(key=_nulls_first(field), reverse=descending)
    return ordered


def _nulls_first(field: str) -> Callable[[Record], tuple[bool, Any]]:
    """A sort key on `field` that puts records without a value first."""

    def key(record: Record) -> tuple[bool, Any]:
        return (record.get(field) is not None, record.get(field))

    return key
