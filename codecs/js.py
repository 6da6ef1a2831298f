"""JavaScript value semantics that Segment's engine relies on.

Segment's mapping kit and trigger language are JavaScript, and several of their results
depend on JS rules: `undefined` differs from `null`, `0`/`""`/`false` are falsy, `String(5.0)`
is `"5"`. Parity needs those rules in one place; this module is that place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = [
    "UNDEFINED",
    "Undefined",
    "get_path",
    "path_getter",
    "is_number",
    "js_string",
    "js_items",
    "js_json_bytes",
    "js_number",
    "js_json_value",
    "json_stringify",
    "real_type",
    "truthy",
]


class Undefined:
    """The JavaScript `undefined`: a key that resolves to it is dropped from objects."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED = Undefined()


def is_number(value: Any) -> bool:
    """`typeof value === 'number'` (bool is not a number in JS)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def truthy(value: Any) -> bool:
    """JavaScript truthiness: objects and arrays are truthy even when empty; NaN is falsy."""
    if value is None or value is UNDEFINED or value is False:
        return False
    if isinstance(value, (dict, list)):
        return True
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def real_type(value: Any) -> str:
    """Segment's `realTypeOf`: the lowercase JS class name of a JSON value."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__.lower()


def _float_text(value: float) -> str:
    """`Number.prototype.toString` for a finite float: the shortest round-trip digits (Python's
    repr finds the same ones), placed by ECMAScript's rules: plain notation from 1e-7 up to
    1e21 exclusive, exponent notation (`1e+21`, `1.5e-7`) outside."""
    if value == 0:
        return "0"  # -0 too
    text = repr(value)
    sign = "-" if text[0] == "-" else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")
    # The point sits after `point` digits: value = 0.<digits> x 10^point.
    point = len(whole) + (int(exponent) if exponent else 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    e = point - 1
    return f"{sign}{digits[0]}{'.' + digits[1:] if k > 1 else ''}e{'+' if e >= 0 else '-'}{abs(e)}"


def _number_string(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return _float_text(value)


_JS_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity")
_JS_RADIX = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")
_JS_SPACE = (" \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004"
             "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")


def js_number(text: str) -> int | float | Undefined:
    """`Number(text)` for a string, UNDEFINED where JavaScript gives NaN; integral values below
    2^53 come back as int (JavaScript has one number type; Python writes 2.0 and 2 apart)."""
    text = text.strip(_JS_SPACE)
    if not text:
        return 0
    if _JS_DECIMAL.fullmatch(text):
        number = float(text)
    elif _JS_RADIX.fullmatch(text):
        number = float(int(text, 0))
    else:
        return UNDEFINED
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def js_string(value: Any) -> str:
    """`String(value)` for JSON values, as JavaScript writes them."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return _number_string(value)
    if isinstance(value, list):
        return ",".join("" if v is None or v is UNDEFINED else js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


_DIGITS = frozenset("0123456789")


def _is_index(key: str) -> bool:
    """A key JavaScript objects keep first, in numeric order: a canonical array index (ASCII
    digits only: `str.isdigit` also takes `²` and `١`, which JavaScript keeps in place)."""
    return (key[:1] in _DIGITS and key.isascii() and key.isdigit() and (key == "0" or key[0] != "0")
            and int(key) < 4294967295)


def js_items(obj: dict[str, Any]) -> Any:
    """An object's items in JavaScript's order: integer-like keys first, ascending, then the rest
    as inserted (what `Object.keys` and `for…in` give)."""
    first = sorted((k for k in obj if _is_index(k)), key=int)
    if not first:
        return obj.items()
    numeric = set(first)
    return [*((k, obj[k]) for k in first), *((k, v) for k, v in obj.items() if k not in numeric)]


def _js_float(value: float) -> Any:
    if math.isnan(value) or math.isinf(value):
        return None
    if value.is_integer() and abs(value) < 2**53:
        return int(value)  # 2.0 and -0.0 are written 2 and 0
    if 1e-4 <= abs(value) < 2**53:
        return value  # msgspec writes these as JavaScript does (shortest digits, plain notation)
    return msgspec.Raw(_float_text(value).encode())


def _js_ready(value: Any) -> bool:
    """Whether msgspec already writes `value` as JSON.stringify would (checked without copying)."""
    kind = type(value)
    if kind is dict:
        for key in value:
            if _is_index(key):
                return False
        return _items_ready(value.values())
    if kind is list:
        return _items_ready(value)
    if kind is float:
        return _js_float(value) is value  # the float needs no rewriting
    return value is not UNDEFINED


def _items_ready(items: Any) -> bool:
    for item in items:
        t = type(item)
        if (t is dict or t is list or t is float or item is UNDEFINED) and not _js_ready(item):
            return False
    return True


def js_json_value(value: Any) -> Any:
    """`value` made ready for msgspec to write the same JSON text as `JSON.stringify`: undefined
    keys dropped (array items become null), NaN/Infinity null, numbers in JavaScript's notation,
    and integer-like object keys first in numeric order, as every JavaScript object keys them."""
    kind = type(value)
    if kind is dict:
        out = {k: js_json_value(v) for k, v in value.items() if v is not UNDEFINED}
        for key in out:
            if _is_index(key):
                return dict(js_items(out))
        return out
    if kind is list:
        return [None if v is UNDEFINED else js_json_value(v) for v in value]
    if kind is float:
        return _js_float(value)
    return value


def json_stringify(value: Any) -> str | Undefined:
    """`JSON.stringify(value)`: compact, UTF-8 kept, `undefined` stays `undefined`."""
    if isinstance(value, Undefined):
        return value
    return str(msgspec.json.encode(js_json_value(value)), "utf-8")


def js_json_bytes(value: Any) -> bytes:
    """The bytes `JSON.stringify(value)` gives: how a request body goes on the wire. Checked
    first, converted only when needed: the usual body needs nothing (~4x faster than converting)."""
    return msgspec.json.encode(value if _js_ready(value) else js_json_value(value))


# Segment's core `get` splits on `.`, on `[` before a quote or digit, and on `]` after one.
_PATH_SPLIT = re.compile(r"\[(?=[\"'\d])|\.|(?<=[\"'\d])\]+")
_QUOTES = re.compile(r"['\"]")


def split_path(path: str) -> tuple[str, ...]:
    """Split a mapping path (`a.b[0]['c d']`) into keys, like Segment's `get`."""
    if path in ("", "."):
        return ()
    return tuple(_QUOTES.sub("", part) for part in _PATH_SPLIT.split(path) if part)


def _step(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, UNDEFINED)
    if isinstance(obj, (list, str)):
        if key == "length":
            return len(obj)
        if key.isdigit():
            index = int(key)
            return obj[index] if index < len(obj) else UNDEFINED
    return UNDEFINED


def get_path(obj: Any, keys: tuple[str, ...]) -> Any:
    """`keys.reduce((o, k) => o && o[k], obj)`: a falsy intermediate value is returned as is."""
    for key in keys:
        if not truthy(obj):
            return obj
        obj = _step(obj, key)
    return obj


def path_getter(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    """`get_path` for one fixed path, built once: walks dicts directly (a dict is always
    truthy in JS) and leaves every other case to `get_path`. (Unrolled two- and three-key
    versions measured no faster than the loop.)"""
    if not keys:
        return lambda obj: obj
    if len(keys) == 1:
        (k0,) = keys

        def get1(obj: Any) -> Any:
            if type(obj) is dict:
                return obj.get(k0, UNDEFINED)
            return get_path(obj, keys)

        return get1

    def get_n(obj: Any) -> Any:
        cur = obj
        for key in keys:
            if type(cur) is not dict:
                if cur is UNDEFINED or cur is None:
                    return cur  # a missing or null intermediate: what get_path returns too
                return get_path(obj, keys)  # start over on the general path
            cur = cur.get(key, UNDEFINED)
        return cur

    return get_n
