"""The directive compilers of the mapping kit: one function per directive (`@path`, `@if`, …).

Each takes the compiler (for errors and for compiling nested values), the directive's argument
and its location, reports every mistake through `c.error`, and returns a `Resolver`: a closure
from the event tree to the value. `DIRECTIVES` maps names to compilers; `mapping.py` drives them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from .js import (
    UNDEFINED,
    get_path,
    is_number,
    js_items,
    js_string,
    json_stringify,
    path_getter,
    real_type,
    split_path,
    truthy,
)
from .liquid import LiquidTemplateError, compile_liquid
from .mapping_errors import MappingRuntimeError

__all__ = ["DIRECTIVES", "Compiler", "Resolver", "article", "const", "kind_of"]

Resolver = Callable[[Any], Any]

LIQUID_MAX_CHARS = 1000
REPLACE_MAX_CHARS = 10


class Compiler(Protocol):
    """What a directive compiler asks of the mapping compiler (`mapping._Compiler`)."""

    def error(self, path: str, message: str) -> Resolver: ...
    def value(self, value: Any, path: str, keep_undefined: bool = False) -> Resolver: ...
    def obj(self, value: dict[str, Any], path: str, keep_undefined: bool = False) -> Resolver: ...
    def directive(self, value: dict[str, Any], path: str) -> Resolver: ...
    def string_or_directive(self, value: Any, path: str) -> Resolver | None: ...
    def options(self, value: Any, path: str, name: str, required: tuple[str, ...] = ()) -> dict[str, Any] | None: ...
    def string_option(self, opts: dict[str, Any], key: str, path: str, allowed: tuple[str, ...] = ()) -> bool: ...


def article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


def _a(kind: str) -> str:
    """`an object`, `a string`: a kind with its article, as Segment's messages write it."""
    return f"{article(kind)} {kind}"


def kind_of(value: Any) -> str:
    kind = real_type(value)
    if kind == "object" and any(k.startswith("@") for k in value):
        return "directive"
    return kind



def const(value: Any) -> Resolver:
    return lambda p: value



def _path(c: Compiler, arg: Any, path: str) -> Resolver:
    if isinstance(arg, str):
        return path_getter(split_path(arg.replace("$.", "", 1)))
    inner = c.string_or_directive(arg, path)
    if inner is None:
        return const(UNDEFINED)

    def dynamic(p: Any) -> Any:
        target = inner(p)
        if not isinstance(target, str):
            raise MappingRuntimeError(f"@path: expected string, got {real_type(target)}")
        return get_path(p, split_path(target.replace("$.", "", 1)))

    return dynamic


_TRIPLE = re.compile(r"\{\{\{([^}]+)\}\}\}")
_DOUBLE = re.compile(r"\{\{([^}]+)\}\}")


def render_template(template: str, payload: Any) -> str:
    """Segment's `{{path}}` placeholders: missing/null render as "", no escaping."""

    def sub(match: re.Match[str]) -> str:
        value = get_path(payload, split_path(match.group(1).strip()))
        return "" if value is None or value is UNDEFINED else js_string(value)

    return _DOUBLE.sub(sub, _TRIPLE.sub(sub, template))


def _template(c: Compiler, arg: Any, path: str) -> Resolver:
    inner = c.string_or_directive(arg, path)
    if inner is None:
        return const(UNDEFINED)

    def resolve(p: Any) -> str:
        template = inner(p)
        if not isinstance(template, str):
            raise MappingRuntimeError(f"@template: expected string, got {real_type(template)}")
        return render_template(template, p)

    return resolve


def _loose_equals_empty_string(value: Any) -> bool:
    """JavaScript `value == ''` for JSON values."""
    if isinstance(value, str):
        return value == ""
    if isinstance(value, bool) or is_number(value):
        return bool(value == 0)
    if isinstance(value, list):
        return js_string(value) == ""
    return False


def _if(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@if")
    if opts is None:
        return const(UNDEFINED)
    if not truthy(opts.get("exists")) and not truthy(opts.get("blank")):
        return c.error(path, 'requires an "exists" key or a "blank" key with a value')
    key = "exists" if "exists" in opts else "blank"
    test = c.value(opts[key], f"{path}/{key}")

    def cond(p: Any) -> bool:  # exists: not null or undefined; blank: not empty either (JavaScript's == '')
        v = test(p)
        return v is not None and v is not UNDEFINED and (key == "exists" or not _loose_equals_empty_string(v))

    then = c.value(opts["then"], f"{path}/then") if "then" in opts else None
    # Segment only takes `else` when its raw value is truthy: `else: false` yields undefined.
    other = c.value(opts["else"], f"{path}/else") if truthy(opts.get("else")) else None

    def resolve(p: Any) -> Any:
        if cond(p):
            return then(p) if then is not None else UNDEFINED
        return other(p) if other is not None else UNDEFINED

    return resolve


def _case(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@case")
    if opts is None:
        return const(UNDEFINED)
    if not c.string_option(opts, "operator", path, ("lower", "upper")):
        return const(UNDEFINED)
    if not opts.get("operator"):
        return c.error(path, 'requires an "operator" key ("lower" or "upper")')
    if not truthy(opts.get("value")):
        return const(UNDEFINED)
    inner = c.string_or_directive(opts["value"], f"{path}/value")
    if inner is None:
        return const(UNDEFINED)
    change = str.lower if opts["operator"] == "lower" else str.upper

    def resolve(p: Any) -> Any:
        v = inner(p)
        return change(v) if isinstance(v, str) else v

    return resolve


def _js_replace(value: str, pattern: str, replacement: str, global_: bool, ignorecase: bool) -> str:
    regex = re.compile(re.escape(pattern), re.IGNORECASE if ignorecase else 0)

    def expand(m: re.Match[str]) -> str:
        # JavaScript's replacement patterns: $$, $&, $` and $'.
        out, i = [], 0
        while i < len(replacement):
            ch = replacement[i]
            nxt = replacement[i + 1] if i + 1 < len(replacement) else ""
            if ch == "$" and nxt in "$&`'" and nxt:
                out.append({"$": "$", "&": m.group(0), "`": value[: m.start()], "'": value[m.end() :]}[nxt])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)

    return regex.sub(expand, value, count=0 if global_ else 1)


def _replace(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@replace", ("pattern", "value"))
    if opts is None:
        return const(UNDEFINED)
    ok = True
    for key, low in (("pattern", 1), ("replacement", 0), ("pattern2", 1), ("replacement2", 0)):
        if key in opts and opts[key] is not None:
            v = opts[key]
            if not isinstance(v, str):
                c.error(f"{path}/{key}", f"should be a string but it is {_a(kind_of(v))}")
                ok = False
            elif not low <= len(v) <= REPLACE_MAX_CHARS:
                c.error(f"{path}/{key}", f"should be a string of length {low} to {REPLACE_MAX_CHARS}")
                ok = False
    for key in ("ignorecase", "global"):
        if key in opts and not isinstance(opts[key], bool):
            c.error(f"{path}/{key}", f"should be a boolean but it is {_a(kind_of(opts[key]))}")
            ok = False
    inner = c.string_or_directive(opts["value"], f"{path}/value")
    if not ok or inner is None:
        return const(UNDEFINED)
    pattern, replacement = opts["pattern"], opts.get("replacement") or ""
    pattern2, replacement2 = opts.get("pattern2"), opts.get("replacement2") or ""
    global_ = opts.get("global", True) if opts.get("global") is not None else True
    ignorecase = bool(opts.get("ignorecase") or False)
    if not truthy(opts["value"]):
        return const(UNDEFINED)

    def resolve(p: Any) -> str:
        v = inner(p)
        if isinstance(v, bool) or is_number(v):
            v = js_string(v)
        if not isinstance(v, str):
            return ""
        out = _js_replace(v, pattern, replacement, global_, ignorecase)
        if pattern2:
            out = _js_replace(out, pattern2, replacement2, global_, ignorecase)
        return out

    return resolve


def _array_path(c: Compiler, arg: Any, path: str) -> Resolver:
    if not isinstance(arg, list) or not arg:
        kind = kind_of(arg)
        return c.error(path, f"should be an array [path, itemShape?] but it is {_a(kind)}")
    first = arg[0]
    if isinstance(first, str):
        root: Resolver = path_getter(split_path(first.replace("$.", "", 1)))
    else:
        inner = c.string_or_directive(first, f"{path}/0")
        if inner is None:
            return const(UNDEFINED)
        root = inner
    shape = arg[1] if len(arg) > 1 else None
    shaped = isinstance(shape, dict) and real_type(shape) == "object" and len(shape) > 0
    item = c.value(shape, f"{path}/1") if shaped else None

    def resolve(p: Any) -> Any:
        r = root(p)
        if item is not None and isinstance(r, (dict, list)):
            return [item(x) for x in (r if isinstance(r, list) else [r])]
        return r

    return resolve


def _literal(c: Compiler, arg: Any, path: str) -> Resolver:
    return c.value(arg, path)


def _json(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@json", ("value", "mode"))
    if opts is None or not c.string_option(opts, "mode", path, ("encode", "decode")):
        return const(UNDEFINED)
    if not truthy(opts["value"]):
        return c.error(f"{path}/value", "must not be empty, false, 0 or null (Segment fails every event)")
    inner = c.value(opts["value"], f"{path}/value")
    if opts["mode"] == "encode":
        return lambda p: json_stringify(inner(p))

    def decode(p: Any) -> Any:
        v = inner(p)
        if isinstance(v, str):
            try:
                return msgspec.json.decode(v)
            except msgspec.DecodeError:
                return v
        return v

    return decode


def flatten_object(value: Any, prefix: str, separator: str, omit_arrays: bool) -> dict[str, Any]:
    """Segment's `flattenObject`: nested keys joined by `separator`; a scalar becomes `{prefix: v}`."""
    if isinstance(value, dict) or (not omit_arrays and isinstance(value, list)):
        out: dict[str, Any] = {}
        items = js_items(value) if isinstance(value, dict) else ((str(i), v) for i, v in enumerate(value))
        for key, v in items:
            out.update(flatten_object(v, f"{prefix}{separator}{key}" if prefix else key, separator, omit_arrays))
        return out
    return {} if value is UNDEFINED else {prefix: value}


def _flatten(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@flatten", ("value",))
    if opts is None:
        return const(UNDEFINED)
    if not truthy(opts.get("separator")):
        return c.error(path, 'requires a "separator" key with a non-empty value')
    sep = c.string_or_directive(opts["separator"], f"{path}/separator")
    if sep is None:
        return const(UNDEFINED)
    inner = c.value(opts["value"], f"{path}/value")
    omit = truthy(opts.get("omitArrays"))

    def resolve(p: Any) -> dict[str, Any]:
        separator = sep(p)
        if not isinstance(separator, str):
            raise MappingRuntimeError("@flatten requires a string separator")
        return flatten_object(inner(p), "", separator, omit)

    return resolve


def _merge(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@merge", ("objects",))
    if opts is None:
        return const(UNDEFINED)
    if not c.string_option(opts, "direction", path, ("left", "right")):
        return const(UNDEFINED)
    if not opts.get("direction"):
        return c.error(path, 'requires a "direction" key ("left" or "right")')
    if not isinstance(opts["objects"], list):
        kind = kind_of(opts["objects"])
        return c.error(f"{path}/objects", f"should be an array but it is {_a(kind)}")
    parts: list[Resolver] = []
    for i, o in enumerate(opts["objects"]):
        kind = kind_of(o)
        if kind == "directive":
            parts.append(c.directive(o, f"{path}/objects/{i}"))
        elif kind == "object":
            parts.append(c.obj(o, f"{path}/objects/{i}", keep_undefined=True))
        else:
            c.error(f"{path}/objects/{i}", f"should be a object or a mapping directive but it is {_a(kind)}")
    if opts["direction"] == "left":
        parts.reverse()

    def resolve(p: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in parts:
            o = part(p)
            if isinstance(o, dict):
                out.update(o)
            elif isinstance(o, (list, str)):
                out.update((str(i), v) for i, v in enumerate(o))
        # A key set to undefined by a later object removes the earlier value (Object.assign).
        return {k: v for k, v in out.items() if v is not UNDEFINED}

    return resolve


def _transform(c: Compiler, arg: Any, path: str) -> Resolver:
    opts = c.options(arg, path, "@transform", ("apply", "mapping"))
    if opts is None:
        return const(UNDEFINED)
    for key in ("apply", "mapping"):
        if kind_of(opts[key]) not in ("object", "directive"):
            kind = kind_of(opts[key])
            return c.error(f"{path}/{key}", f"should be a object or a mapping directive but it is {_a(kind)}")
    apply = c.value(opts["apply"], f"{path}/apply")
    mapping = c.value(opts["mapping"], f"{path}/mapping")

    def resolve(p: Any) -> Any:
        if not isinstance(p, dict):
            raise MappingRuntimeError(f"data must be an object, got {real_type(p)}")
        return mapping(apply(p))

    return resolve


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def _exclude_when_null(c: Compiler, arg: Any, path: str) -> Resolver:
    inner = c.value(arg, path)

    def resolve(p: Any) -> Any:
        v = inner(p)
        return UNDEFINED if v is None else _drop_nulls(v)

    return resolve


def _liquid(c: Compiler, arg: Any, path: str) -> Resolver:
    if not isinstance(arg, str):
        kind = kind_of(arg)
        return c.error(path, f"should be a string but it is {_a(kind)}")
    if len(arg) > LIQUID_MAX_CHARS:
        return c.error(path, f"liquid templates are limited to {LIQUID_MAX_CHARS} characters")
    try:
        render = compile_liquid(arg)
    except LiquidTemplateError as exc:
        return c.error(path, str(exc))
    return render


DIRECTIVES: dict[str, Callable[[Compiler, Any, str], Resolver]] = {
    "@if": _if,
    "@path": _path,
    "@template": _template,
    "@literal": _literal,
    "@arrayPath": _array_path,
    "@case": _case,
    "@replace": _replace,
    "@json": _json,
    "@flatten": _flatten,
    "@merge": _merge,
    "@transform": _transform,
    "@excludeWhenNull": _exclude_when_null,
    "@liquid": _liquid,
}
