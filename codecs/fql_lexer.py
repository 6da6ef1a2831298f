"""FQL's lexer (codecs/fql.py parses and compiles): text to tokens, refusing what Segment's own lexer
misreads (operators touching their field or value, `==`, single quotes, exponents, brackets,
uppercase keywords) with the column it happens at."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Tok", "TriggerError", "lex"]


class TriggerError(ValueError):
    """A trigger Segment would misread or reject; `column` is 1-based."""

    def __init__(self, message: str, text: str, column: int) -> None:
        self.reason = message
        self.text = text
        self.column = column
        super().__init__(f"column {column}: {message}\n  {text}\n  {' ' * (column - 1)}^")


@dataclass(frozen=True, slots=True)
class Tok:
    """One token; `col` is 1-based."""

    kind: str  # ident, string, number, op, not, lparen, rparen, comma, and, or, null, true, false, eos
    value: str
    col: int


_MISREAD_WORDS = {
    "AND": "use lowercase `and`: Segment ignores `AND` and reads the rest as if it were not there",
    "OR": "use lowercase `or`: Segment ignores `OR` and reads the rest as if it were not there",
    "And": "use lowercase `and`", "Or": "use lowercase `or`",
    "not": "`not` is not part of FQL (Segment silently ignores it); use != or !contains()/!match()",
    "NOT": "`NOT` is not part of FQL (Segment silently ignores it); use != or !contains()/!match()",
    "NULL": "use lowercase `null`", "TRUE": "use lowercase `true`", "FALSE": "use lowercase `false`",
}
_IDENT_START = re.compile(r"[A-Za-z_\\]")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_\-\\]")


def lex(text: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c in " \t\n\r":
            i += 1
        elif c == "(":
            toks.append(Tok("lparen", c, col))
            i += 1
        elif c == ")":
            toks.append(Tok("rparen", c, col))
            i += 1
        elif c == ",":
            toks.append(Tok("comma", c, col))
            i += 1
        elif c in "[]":
            raise TriggerError("brackets are not supported in trigger paths; use dots", text, col)
        elif c == "'":
            raise TriggerError("use double quotes: Segment keeps the quotes of a single-quoted string, so it never "
                               "matches", text, col)
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise TriggerError("unterminated string", text, col)
            toks.append(Tok("string", text[i + 1 : end], col))
            i = end + 1
        elif c == "=":
            if text.startswith("==", i):
                raise TriggerError("use `=`, not `==` (Segment reads `==` as comparing with \"=\")", text, col)
            toks.append(Tok("op", "=", col))
            i += 1
        elif c == "!":
            if text.startswith("!=", i):
                _spaced(text, i, 2)
                toks.append(Tok("op", "!=", col))
                i += 2
            elif i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "("):
                toks.append(Tok("not", "!", col))
                i += 1
            else:
                raise TriggerError("expected `!=` or `!contains(`/`!match(`", text, col)
        elif c in "<>":
            op = text[i : i + 2] if text.startswith("=", i + 1) else c
            _spaced(text, i, len(op))
            toks.append(Tok("op", op, col))
            i += len(op)
        elif c.isdigit() or c in "+-":
            i = _lex_number(text, i, toks)
        elif _IDENT_START.match(c):
            i = _lex_ident(text, i, toks)
        else:
            raise TriggerError(f"unexpected character {c!r}", text, col)
    toks.append(Tok("eos", "", n + 1))
    return toks


_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _lex_number(text: str, i: int, toks: list[Tok]) -> int:
    """A number at `i` (Segment's: no exponent, no trailing dot or letters); returns where it ends."""
    m = _NUMBER.match(text, i)
    if m and text[m.end():m.end() + 1] in ("e", "E"):
        raise TriggerError(f"write the number out: Segment reads `{text[i:m.end() + 1]}…` as {m.group(0)}, "
                           "stopping at the exponent", text, i + 1)
    if not m or (m.end() < len(text) and (text[m.end()] == "." or _IDENT_CHAR.match(text[m.end()]))):
        raise TriggerError("malformed number", text, i + 1)
    toks.append(Tok("number", m.group(0), i + 1))
    return m.end()


def _spaced(text: str, i: int, width: int) -> None:
    """`!=`, `<`, `<=`, `>`, `>=` need a space on both sides: Segment's lexer fails on
    `properties.total>100` and `properties.sku !="x"`, and reads `properties.count >=1` as
    something else than it says."""
    op = text[i:i + width]
    if i == 0 or text[i - 1] not in " \t\n\r":
        raise TriggerError(f"put a space before `{op}`: Segment cannot read it touching the field", text, i + 1)
    if i + width >= len(text) or text[i + width] not in " \t\n\r":
        raise TriggerError(f"put a space after `{op}`: Segment misreads it touching the value", text, i + 1)


def _lex_ident(text: str, i: int, toks: list[Tok]) -> int:
    """Read a dotted identifier (`properties.a.b`); backslash escapes the next character."""
    start, n = i, len(text)
    segments: list[str] = []
    current: list[str] = []
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise TriggerError("expected a character after the escape `\\`", text, i + 1)
            current.append(text[i + 1])
            i += 2
        elif _IDENT_CHAR.match(c):
            current.append(c)
            i += 1
        elif c == ".":
            segments.append("".join(current))
            current = []
            i += 1
            if i >= n or not (_IDENT_START.match(text[i])):
                what = "a number" if i < n and text[i].isdigit() else "nothing"
                raise TriggerError(
                    f"a path segment must be a name, got {what} (Segment misreads numeric segments)", text, i + 1
                )
        else:
            break
    segments.append("".join(current))
    word = ".".join(segments)
    kind = "ident"
    if word in ("and", "or", "null", "true", "false"):
        kind = word
        if word in ("and", "or") and text.startswith("(", i):
            raise TriggerError(f"put a space between `{word}` and `(`: Segment reads `{word}(` differently",
                               text, start + 1)
    elif word in _MISREAD_WORDS:
        raise TriggerError(_MISREAD_WORDS[word], text, start + 1)
    toks.append(Tok(kind, word, start + 1))
    return i
