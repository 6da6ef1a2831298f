"""Action fields and payload validation, with Segment's results and messages.

An action declares its fields (name, label, type, required, allowNull, default mapping).
`validate_payload` does what Segment's `removeEmptyValues` + AJV (`coerceTypes: 'array'`,
`removeAdditional`) do to a mapped payload: drop empty values, strip unknown keys, coerce
scalars (5 -> "5", "1.5" -> 1.5, "true" -> true), check formats (email, date-like), and
report every problem in one message that reads like Segment's
("The root value is missing the required field 'external_id'.").

The single-event and batch paths differ in one point, as in Segment: only the single path
drops a top-level `""` (so a required field mapped to `""` fails there, and is sent as `""`
in a batch).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .js import UNDEFINED, Undefined, is_number, js_number, js_string

__all__ = ["Field", "PayloadInvalid", "Validator", "compile_validator", "default_mapping", "validate_payload"]


@dataclass(frozen=True, slots=True)
class Field:
    """One action field, declared like Segment's `InputField`."""

    name: str
    label: str
    type: str  # string | text | password | datetime | number | integer | boolean | object
    required: bool = False
    allow_null: bool = False
    default: Any = None  # the default mapping (a directive or a literal); None = no default
    format: str | None = None  # email | uri
    choices: tuple[str, ...] | None = None  # the values a field takes (Segment's `choices`: AJV's enum)
    properties: tuple[Field, ...] | None = None  # object sub-fields (unknown sub-keys stripped)
    description: str = ""


class PayloadInvalid(ValueError):
    """The mapped payload fails field validation; the message is Segment's wording."""


def default_mapping(fields: tuple[Field, ...]) -> dict[str, Any]:
    """The mapping a preset uses: each field's default (Segment's `defaultValues(fields)`)."""
    out: dict[str, Any] = {}
    for f in fields:
        if f.default is not None:
            out[f.name] = f.default
    return out


_BASE_TYPES = {"string": ("string",), "text": ("string",), "password": ("string",), "datetime": ("string", "number")}
_TYPES_CACHE: dict[int, tuple[str, ...]] = {}


def _schema_types(f: Field) -> tuple[str, ...]:
    """JSON-schema types of a field (cached: fields are module-level constants)."""
    types = _TYPES_CACHE.get(id(f))
    if types is None:
        types = _BASE_TYPES.get(f.type, (f.type,))
        types = _TYPES_CACHE[id(f)] = types + ("null",) if f.allow_null else types
    return types


def _remove_empty(value: Any, f: Field) -> Any:
    """`removeEmptyValues` for one field value below the root."""
    if isinstance(value, dict):
        if f.properties is None or f.type != "object":
            return value
        subs = {s.name: s for s in f.properties}
        out = {}
        for k, v in value.items():
            v = _remove_empty(v, subs[k]) if k in subs else v
            if v is not UNDEFINED:
                out[k] = v
        return out
    if isinstance(value, list):
        return value
    types = _schema_types(f)
    if value is None and "null" not in types:
        return UNDEFINED
    if value == "" and isinstance(value, str) and "string" not in types:
        return UNDEFINED
    return value


_A = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "a boolean",
      "object": "an object", "array": "an array", "null": "null"}


def _humanize_type(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_message(label: str, types: tuple[str, ...], value: Any) -> str:
    listed = types[0] if len(types) == 1 else ", ".join(types[:-1]) + " or " + types[-1]
    article = "an" if listed[:1] in "aeiou" else "a"
    return f"{label} must be {article} {listed} but it was {_humanize_type(value)}."


def _coerce(value: Any, target: str) -> Any:
    """AJV's scalar coercion to `target`; UNDEFINED when it cannot coerce."""
    if target == "string":
        if isinstance(value, bool) or is_number(value):
            return js_string(value)
        if value is None:
            return ""
        return UNDEFINED
    if target in ("number", "integer"):
        if isinstance(value, bool):
            return int(value)
        if value is None:
            return 0
        number = js_number(value) if isinstance(value, str) and value else UNDEFINED
        if isinstance(number, Undefined) or (target == "integer" and not float(number).is_integer()):
            return UNDEFINED
        return number
    if target == "boolean":
        if value in ("true", "false"):
            return value == "true"
        if is_number(value) and value in (0, 1):
            return bool(value)
        if value is None:
            return False
        return UNDEFINED
    if target == "null":
        return None if value in ("", 0, False) else UNDEFINED
    return UNDEFINED


def _matches(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return is_number(value)
    if kind == "integer":
        return is_number(value) and float(value).is_integer()
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    return False


_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    re.IGNORECASE,
)


def _rfc3986_uri() -> re.Pattern[str]:
    """An absolute URI as AJV's `uri` format reads RFC 3986 (appendix A): ASCII only, a scheme,
    then a non-empty rest; two quirks of its pattern kept: the authority may follow a single
    slash (`https:/x` and `https://h:port/` pass, as an empty authority and a path), and an IPv4
    octet may have leading zeros."""
    unreserved, pct, sub = r"a-z0-9\-._~", r"%[0-9a-f]{2}", r"!$&'()*+,;="
    pchar = rf"(?:[{unreserved}{sub}:@]|{pct})"
    h16 = r"[0-9a-f]{1,4}"
    octet = r"(?:25[0-5]|2[0-4]\d|[01]?\d\d?)"
    ipv4 = rf"(?:{octet}\.){{3}}{octet}"
    ls32 = rf"(?:{h16}:{h16}|{ipv4})"
    ipv6 = "|".join([
        rf"(?:{h16}:){{6}}{ls32}", rf"::(?:{h16}:){{5}}{ls32}", rf"(?:{h16})?::(?:{h16}:){{4}}{ls32}",
        *(rf"(?:(?:{h16}:){{0,{n}}}{h16})?::(?:{h16}:){{{4 - n}}}{ls32}" for n in (1, 2)),
        rf"(?:(?:{h16}:){{0,3}}{h16})?::{h16}:{ls32}", rf"(?:(?:{h16}:){{0,4}}{h16})?::{ls32}",
        rf"(?:(?:{h16}:){{0,5}}{h16})?::{h16}", rf"(?:(?:{h16}:){{0,6}}{h16})?::"])
    ip_literal = rf"\[(?:{ipv6}|v[0-9a-f]+\.[{unreserved}{sub}:]+)\]"
    host = rf"(?:{ip_literal}|(?:[{unreserved}{sub}]|{pct})*)"
    authority = rf"(?:(?:[{unreserved}{sub}:]|{pct})*@)?{host}(?::\d*)?"
    hier = rf"(?:/?/{authority}(?:/{pchar}*)*|/(?:{pchar}+(?:/{pchar}*)*)?|{pchar}+(?:/{pchar}*)*)"
    tail = rf"(?:\?(?:{pchar}|[/?])*)?(?:#(?:{pchar}|[/?])*)?"
    return re.compile(rf"[a-z][a-z0-9+\-.]*:{hier}{tail}", re.IGNORECASE | re.ASCII | re.DOTALL)


_URI = _rfc3986_uri()
_DAYJS = re.compile(r"^(\d{4})[-/]?(\d{1,2})?[-/]?(\d{0,2})[Tt\s]*(\d{1,2})?:?(\d{1,2})?:?(\d{1,2})?[.:]?(\d+)?$")


# Fields in range: JavaScript refuses `2024-01-02T25:00:00Z` (and takes 24:00 as the next midnight).
_ISO = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T(([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?"
                  r"|24:00(:00(\.0{1,9})?)?)(Z|[+-]\d{2}:?\d{2})$")
_UNIX = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
_FROM_TEXT = (dt.datetime(2001, 1, 1), dt.datetime(2002, 2, 2))


def is_date_like(text: str) -> bool:
    """Segment's `date-like` format: what dayjs (or `new Date`) can parse; numeric strings are unix times.

    An approximation of JavaScript's legacy Date parser (docs/parity.md, "Odd date strings"): ISO
    8601 with fields in range, dayjs's own pattern, plain decimal unix times, and what dateutil
    reads with a month and a day or year taken from the text ("March" or "12:30" alone are
    not dates; dateutil would fill them in from today)."""
    if _ISO.match(text):
        return True  # the usual Segment timestamp; checked first because dateutil is slow
    if _UNIX.match(text.strip()):
        return abs(float(text)) * 1000 <= 8.64e15  # float() reads whatever _UNIX matched
    if _DAYJS.match(text):
        return True  # dayjs builds a Date from the parts without range checks, so it is valid
    from dateutil import parser

    try:
        first, second = (parser.parse(text, default=default) for default in _FROM_TEXT)
    except (ValueError, OverflowError):
        return False
    return bool(first.month == second.month and (first.day == second.day or first.year == second.year))


def _check_format(f: Field, value: Any, errors: list[str]) -> None:
    if not isinstance(value, str):
        return
    if f.type == "datetime" and not is_date_like(value):
        errors.append(f"{f.label} must be a valid date-like string but it was not.")
    elif f.format == "email" and not _EMAIL.match(value):
        errors.append(f"{f.label} must be a valid email address string but it was not.")
    elif f.format == "uri" and not _URI.fullmatch(value):
        errors.append(f"{f.label} must be a valid URI string but it was not.")


def _check_choices(f: Field, value: Any, errors: list[str]) -> None:
    if f.choices is not None and value not in f.choices:
        listed = [f'"{c}"' for c in f.choices]
        allowed = listed[0] if len(listed) == 1 else (
            f"{listed[0]} or {listed[1]}" if len(listed) == 2 else ", ".join(listed[:-1]) + f", or {listed[-1]}")
        errors.append(f"{f.label} must be one of: {allowed}.")


def _validate_value(f: Field, value: Any, errors: list[str]) -> Any:
    """AJV's type keyword with `coerceTypes: 'array'`, then the format keyword. Its quirks are
    Segment's behaviour: a one-element array is unwrapped, and kept as is only for a
    single-type field whose type it has (`["ios"]` for a string); for a field with two types
    (string or null, string or number) AJV's check of the unwrapped item always fails, so the
    item is coerced or refused (`["ios"]` for a string-or-null field is refused, `[null]` becomes
    `""`). Object fields are never coerced or unwrapped. After a type error the format is
    still checked, and the choices, on the unwrapped item (`allErrors`)."""
    types = _schema_types(f)
    if not any(_matches(value, t) for t in types):
        if "object" in types:
            errors.append(_type_message(f.label, types, value))
            return UNDEFINED
        coerced: Any = UNDEFINED
        if type(value) is list and len(value) == 1:
            value = value[0]
            if len(types) == 1 and _matches(value, types[0]):
                coerced = value
        if coerced is UNDEFINED:
            for t in types:
                coerced = _coerce(value, t)
                if coerced is not UNDEFINED:
                    break
            else:
                errors.append(_type_message(f.label, types, value))
                _check_format(f, value, errors)
                _check_choices(f, value, errors)
                return UNDEFINED
        value = coerced
    if isinstance(value, dict) and f.properties is not None:
        return _validate_object(value, f.properties, errors, f"The value at /{f.name}")
    _check_format(f, value, errors)
    _check_choices(f, value, errors)
    return value


def _validate_object(payload: dict[str, Any], fields: tuple[Field, ...], errors: list[str], who: str) -> dict[str, Any]:
    for f in fields:
        if f.required and f.name not in payload:
            errors.append(f"{who} is missing the required field '{f.name}'.")
    checked: dict[str, Any] = {}
    for f in fields:
        if f.name in payload:
            checked[f.name] = _validate_value(f, payload[f.name], errors)
    # Keep the mapping's key order (AJV validates in place); unknown keys are dropped.
    return {k: checked[k] for k in payload if k in checked and checked[k] is not UNDEFINED}


def validate_payload(payload: dict[str, Any], fields: tuple[Field, ...], *, batch: bool) -> dict[str, Any]:
    """Clean, coerce and check a mapped payload; returns the payload the request is built from.

    Raises `PayloadInvalid` with all messages joined by a space, as Segment's AggregateAjvError.
    """
    known = {f.name: f for f in fields}
    cleaned: dict[str, Any] = {}
    for k, v in payload.items():
        if k in known:
            v = _remove_empty(v, known[k])
        if v is UNDEFINED or (v == "" and isinstance(v, str) and not batch):
            continue
        cleaned[k] = v
    errors: list[str] = []
    result = _validate_object(cleaned, fields, errors, "The root value")
    if errors:
        raise PayloadInvalid(" ".join(errors))
    return result


Validator = Callable[[dict[str, Any]], dict[str, Any]]

# Fast-path value checks: each returns True when the value is already valid as is (no
# coercion, no format problem), so the general path would keep it unchanged.


def _fast_check(f: Field) -> Callable[[Any], bool] | None:
    if f.type in ("string", "text", "password"):
        if f.choices is not None:
            choices = frozenset(f.choices)
            return lambda v: type(v) is str and v in choices
        if f.format == "email":
            return lambda v: type(v) is str and _EMAIL.match(v) is not None
        if f.format == "uri":
            return lambda v: type(v) is str and _URI.fullmatch(v) is not None
        return lambda v: type(v) is str
    if f.type == "datetime":
        return lambda v: type(v) is str and _ISO.match(v) is not None
    if f.type == "number":
        return lambda v: type(v) is int or type(v) is float
    if f.type == "integer":
        return lambda v: type(v) is int
    if f.type == "boolean":
        return lambda v: v is True or v is False
    if f.type == "object" and f.properties is None:
        return lambda v: type(v) is dict
    if f.type == "object" and f.properties is not None:
        subs = {s.name: _fast_check(s) for s in f.properties}
        required = tuple(s.name for s in f.properties if s.required)

        def check_object(v: Any) -> bool:
            if type(v) is not dict:
                return False
            for k, x in v.items():
                sub = subs.get(k)
                if sub is None or not sub(x):
                    return False  # an unknown, empty or wrong sub-value: the general path decides
            return all(name in v for name in required)

        return check_object
    return None


def compile_validator(fields: tuple[Field, ...], *, batch: bool) -> Validator:
    """`validate_payload` for one action, built once: a fast path for payloads that need no
    coercion and have no problem; anything else takes the general path, so results and
    messages are the same."""
    checks: dict[str, tuple[Callable[[Any], bool] | None, bool]] = {
        f.name: (_fast_check(f), "null" in _schema_types(f)) for f in fields}
    required = tuple(f.name for f in fields if f.required)

    def validate(payload: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in payload.items():
            entry = checks.get(k)
            if entry is None:
                continue  # unknown keys are dropped
            if v is None:
                if entry[1]:
                    out[k] = None
                continue  # null for a non-nullable field is an empty value: removed
            if v == "" and type(v) is str and not batch:
                continue
            check = entry[0]
            if check is None or not check(v):
                return validate_payload(payload, fields, batch=batch)
            out[k] = v
        for name in required:
            if name not in out:
                return validate_payload(payload, fields, batch=batch)
        return out

    return validate
