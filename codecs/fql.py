"""Segment's trigger language (FQL, as used by destination subscriptions), compiled to predicates.

The accepted language and the truth values match `@segment/destination-subscriptions`:

    type = "track" and (event = "Order Completed" or properties.total > 100)
    contains(event, "Order") or match(context.page.path, "/checkout*")
    properties.coupon != null and traits.vip = true

Where Segment's parser silently reads a trigger differently from what it says (it drops
unknown identifiers such as `anonymousId`, uppercase `AND`/`OR` and `not`, keeps the quotes
of single-quoted strings, reads `==` as `=` with the value `"="`, takes the last `and`/`or`
of a level for the whole level, breaks on nested parentheses and on a contains()/match() that
is not the last term of its group, fails or misreads operators touching their field or value,
`or(`, `1e3`) we refuse the trigger with a `TriggerError` that points at the column, instead of
matching something unexpected.

`compile_trigger(text)` parses once; the returned `Trigger` is a plain callable on the event
tree (the decoded JSON object) and does no parsing per event. It also says which string
equalities any match needs (`Trigger.needs`), so routing can pass over instances whose
triggers cannot match an event without asking each (dispatch.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .fql_lexer import Tok, TriggerError, lex
from .js import UNDEFINED, is_number, js_string, path_getter

__all__ = ["Need", "Trigger", "TriggerError", "compile_trigger", "field_reader"]

Predicate = Callable[[dict[str, Any]], bool]
#: A condition every match needs: the field (head, path) holds exactly this string.
Need = tuple[str, tuple[str, ...], str]


_TOP_FIELDS = ("type", "event", "name", "userId")
_NESTED_FIELDS = ("properties", "traits", "context")


class _Needs(dict[int, frozenset[Need]]):
    """The needs of each predicate a parser built, by id (predicates are plain closures)."""

    def mark(self, pred: Predicate, needs: frozenset[Need]) -> Predicate:
        if needs:
            self[id(pred)] = needs
        return pred

    def of(self, pred: Predicate) -> frozenset[Need]:
        return self.get(id(pred), frozenset())


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = lex(text)
        self.pos = 0
        self.needs = _Needs()

    def peek(self) -> Tok:
        return self.toks[self.pos]

    def take(self, kind: str, what: str) -> Tok:
        tok = self.peek()
        if tok.kind != kind:
            self.fail(f"expected {what}, got {_describe(tok)}", tok)
        self.pos += 1
        return tok

    def fail(self, message: str, tok: Tok) -> None:
        raise TriggerError(message, self.text, tok.col)

    def parse(self) -> Predicate:
        if self.peek().kind == "eos":
            self.fail("the trigger is empty", self.peek())
        pred = self.group(depth=0)
        tok = self.peek()
        if tok.kind != "eos":
            self.fail(f"expected `and`, `or` or the end, got {_describe(tok)}", tok)
        return pred

    def group(self, depth: int) -> Predicate:
        terms = [self.term(depth)]
        conj: Tok | None = None
        while self.peek().kind in ("and", "or"):
            tok = self.peek()
            if conj is not None and tok.kind != conj.kind:
                self.fail(
                    "mixing `and` and `or` needs parentheses: Segment applies the last one to the whole group",
                    tok,
                )
            conj = tok
            self.pos += 1
            terms.append(self.term(depth))
        if len(terms) == 1:
            return terms[0]
        needs = [self.needs.of(t) for t in terms]
        if conj is not None and conj.kind == "or":  # what every alternative needs
            return self.needs.mark(_any_of(tuple(terms)), frozenset.intersection(*needs))
        return self.needs.mark(_all_of(tuple(terms)), frozenset().union(*needs))

    def term(self, depth: int) -> Predicate:
        tok = self.peek()
        if tok.kind == "lparen":
            if depth >= 1:
                self.fail("nested parentheses are not supported by Segment's trigger parser", tok)
            self.pos += 1
            if self.peek().kind == "rparen":
                self.fail("empty parentheses", self.peek())
            inner = self.group(depth + 1)
            self.take("rparen", "`)`")
            return inner
        if depth >= 1 and (tok.kind == "not" or (tok.kind == "ident" and tok.value in ("contains", "match"))):
            # Segment reads a group whose function is its last term as written (checked on its
            # engine); a function followed by more terms ends the group at the function's `)`.
            pred = self.function_term(tok)
            if self.peek().kind != "rparen":
                self.fail("contains()/match() inside parentheses: Segment ends the group at the function's `)` "
                          "and reads the rest as part of the outer level; move it out of the parentheses or make it "
                          "the group's last term", tok)
            return pred
        if tok.kind == "not" or (tok.kind == "ident" and tok.value in ("contains", "match")
                                 and self.toks[self.pos + 1].kind == "lparen"):
            return self.function_term(tok)
        if tok.kind == "ident":
            return self.condition()
        self.fail(f"expected a condition, got {_describe(tok)}", tok)
        raise AssertionError  # unreachable

    def function_term(self, tok: Tok) -> Predicate:
        """`contains(…)`, `match(…)`, or either negated with `!`."""
        if tok.kind == "not":
            self.pos += 1
            fn = self.peek()
            if fn.kind != "ident" or fn.value not in ("contains", "match"):
                self.fail("`!` must be followed by contains( or match(", tok)
        return self.function(negate=tok.kind == "not")

    def field(self) -> tuple[str, tuple[str, ...], Tok]:
        tok = self.take("ident", "a field")
        head, _, rest = tok.value.partition(".")
        if head in _TOP_FIELDS:
            if rest:
                self.fail(f"`{head}` has no sub-fields", tok)
            return head, (), tok
        if head in _NESTED_FIELDS:
            if not rest:
                self.fail(f"`{head}` needs a path, e.g. {head}.plan", tok)
            return head, tuple(rest.split(".")), tok
        self.fail(
            f"unknown field `{tok.value}`: triggers can read type, event, name, userId, "
            "properties.*, traits.*, context.* (Segment silently ignores anything else)",
            tok,
        )
        raise AssertionError  # unreachable

    def function(self, negate: bool) -> Predicate:
        name = self.take("ident", "contains or match")
        self.take("lparen", "`(`")
        head, path, ftok = self.field()
        if head == "type":
            self.fail(f"{name.value}() cannot read `type`", ftok)
        self.take("comma", "`,`")
        arg = self.peek()
        if arg.kind not in ("string", "number"):
            self.fail(f"expected a quoted string, got {_describe(arg)}", arg)
        self.pos += 1
        self.take("rparen", "`)`")
        read = field_reader(head, path)
        # Segment compares a number argument as the string JavaScript writes for it ("1.50" -> "1.5").
        value = js_string(float(arg.value)) if arg.kind == "number" else arg.value
        if name.value == "contains":
            if negate:
                return lambda ev: isinstance(a := read(ev), str) and value not in a
            return lambda ev: isinstance(a := read(ev), str) and value in a
        starts, ends = value.endswith("*"), value.startswith("*")
        if arg.kind != "string" or starts == ends:
            self.fail(
                'match() takes one wildcard, at the start or the end ("Order*" or "*Completed"); '
                "Segment misreads any other pattern",
                arg,
            )
        if starts:
            prefix = value[:-1]
            if negate:
                return lambda ev: isinstance(a := read(ev), str) and not a.startswith(prefix)
            return lambda ev: isinstance(a := read(ev), str) and a.startswith(prefix)
        suffix = value[1:]
        if negate:
            return lambda ev: isinstance(a := read(ev), str) and not a.endswith(suffix)
        return lambda ev: isinstance(a := read(ev), str) and a.endswith(suffix)

    def condition(self) -> Predicate:
        head, path, ftok = self.field()
        op = self.take("op", "an operator (=, !=, <, <=, >, >=)")
        val = self.peek()
        if val.kind not in ("string", "number", "ident", "null", "true", "false"):
            self.fail(f"expected a value, got {_describe(val)}", val)
        self.pos += 1
        return _condition(self, head, path, op, val)


def _condition(p: _Parser, head: str, path: tuple[str, ...], op: Tok, val: Tok) -> Predicate:
    read = field_reader(head, path)
    nested = head in _NESTED_FIELDS
    if val.kind == "null":
        if head in ("type", "event"):
            p.fail(f'`{head} = null` compares with the string "null" in Segment; it is refused here', val)
        if op.value == "=":
            return lambda ev: read(ev) in (None, UNDEFINED)
        if op.value == "!=":
            return lambda ev: read(ev) not in (None, UNDEFINED)
        p.fail("null only works with = and !=", op)
    if val.kind in ("true", "false"):
        if op.value == "!=":
            other = "false" if val.value == "true" else "true"
            p.fail(f"`!= {val.value}` is always true in Segment; write `= {other}`", op)
        if op.value != "=":
            p.fail(f"{val.value} only works with =", op)
        if nested or head == "userId":
            flag = val.kind == "true"
            return lambda ev: read(ev) is flag
        p.fail(f'`{head} = {val.value}` compares with the string "{val.value}"; quote it if that is meant', val)
    if op.value in ("<", "<=", ">", ">="):
        if not nested:
            p.fail(f"`{op.value}` compares numbers; `{head}` is never a number", op)
        try:
            number = float(val.value)
        except ValueError:
            number = math.nan
        if val.kind not in ("number", "string") or math.isnan(number):
            p.fail(f"`{op.value}` needs a number, got {_describe(val)}", val)
        compare = _COMPARE[op.value]
        return lambda ev: is_number(a := read(ev)) and compare(a, number)
    if val.kind == "number" and nested:
        number = float(val.value)
        if op.value == "=":
            return lambda ev: is_number(a := read(ev)) and a == number
        return lambda ev: is_number(a := read(ev)) and a != number
    text = js_string(float(val.value)) if val.kind == "number" else val.value
    if op.value == "=":
        return p.needs.mark(lambda ev: isinstance(a := read(ev), str) and a == text,
                            frozenset({(head, path, text)}))
    return lambda ev: not (isinstance(a := read(ev), str) and a == text)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _any_of(preds: tuple[Predicate, ...]) -> Predicate:
    def any_of(ev: dict[str, Any]) -> bool:  # loops, not any(): a generator costs more than the predicates
        for p in preds:
            if p(ev):
                return True
        return False

    return any_of


def _all_of(preds: tuple[Predicate, ...]) -> Predicate:
    def all_of(ev: dict[str, Any]) -> bool:
        for p in preds:
            if not p(ev):
                return False
        return True

    return all_of


def field_reader(head: str, path: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    """Reads a trigger's field (`properties.plan`: head "properties", path ("plan",)) from an event tree."""
    if head in _TOP_FIELDS:
        return lambda ev: ev.get(head, UNDEFINED)
    get = path_getter(path)
    return lambda ev: get(ev.get(head, UNDEFINED))


def _describe(tok: Tok) -> str:
    if tok.kind == "eos":
        return "the end of the trigger"
    if tok.kind == "string":
        return f'"{tok.value}"'
    return f"`{tok.value}`"


class Trigger:
    """A compiled trigger: call it with the event tree to know whether the event matches."""

    __slots__ = ("text", "matches", "needs")

    def __init__(self, text: str, predicate: Predicate, needs: frozenset[Need] = frozenset()) -> None:
        self.text = text
        #: The predicate itself: the hot path calls it without the `__call__` hop.
        self.matches = predicate
        #: String equalities every match needs (from its `and`s; what all of an `or` need).
        self.needs = needs

    def __call__(self, event: dict[str, Any]) -> bool:
        return self.matches(event)

    def __repr__(self) -> str:
        return f"Trigger({self.text!r})"


def compile_trigger(text: str) -> Trigger:
    """Parse and compile `text`; raises `TriggerError` for anything Segment would misread."""
    parser = _Parser(text)
    pred = parser.parse()
    return Trigger(text, pred, parser.needs.of(pred))
