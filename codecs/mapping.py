"""Segment's mapping kit (`@path`, `@if`, `@template`, … `@liquid`), compiled to closures.

`compile_mapping(json)` checks the mapping the way Segment's `validate` does (plus the
mistakes Segment only finds per event, such as `@if` without `exists`/`blank`, or that it
silently turns into `undefined`, such as `@json` with mode `"ENCODE"`) and returns a
`Mapping`: a callable from the event tree to the payload object. Results follow Segment's
`transform`, including its quirks (falsy values short-circuit paths, `@if`'s `else` must be
truthy, `@replace` returns `""` for a missing value); the reference lists them.

Errors:
* MappingError        the mapping JSON is wrong; `errors` lists (path, message) for all of them
* MappingRuntimeError a directive failed on one event (e.g. `@path` resolved to a number)

The driver lives here (dispatch from a JSON value to a directive, literal, object or array, and
the argument checks directives share); the directives themselves are in `directives.py`.
"""

from __future__ import annotations

from typing import Any

from .directives import DIRECTIVES, Resolver, article, const, kind_of
from .js import UNDEFINED, json_stringify, real_type
from .mapping_errors import MappingError, MappingRuntimeError

__all__ = ["Mapping", "MappingError", "MappingRuntimeError", "compile_mapping"]


class _Compiler:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def error(self, path: str, message: str) -> Resolver:
        self.errors.append((path, message))
        return const(UNDEFINED)

    # Dispatch ---------------------------------------------------------------------------
    def value(self, value: Any, path: str, keep_undefined: bool = False) -> Resolver:
        kind = kind_of(value)
        if kind == "directive":
            return self.directive(value, path)
        if kind == "object":
            return self.obj(value, path, keep_undefined)
        if kind == "array":
            items = [self.value(v, f"{path}/{i}") for i, v in enumerate(value)]
            # Items that resolve to undefined stay undefined (Segment's removeUndefined keeps them):
            # field validation tells `[undefined]` from `[null]`, and JSON writes both as null.
            return lambda p: [item(p) for item in items]
        return const(value)

    def obj(self, value: dict[str, Any], path: str, keep_undefined: bool = False) -> Resolver:
        fields = [(k, self.value(v, f"{path}/{k}")) for k, v in value.items()]
        if keep_undefined:
            return lambda p: {k: r(p) for k, r in fields}
        return lambda p: {k: r for k, f in fields if (r := f(p)) is not UNDEFINED}

    def directive(self, value: dict[str, Any], path: str) -> Resolver:
        names = [k for k in value if k.startswith("@")]
        others = [k for k in value if not k.startswith("@") and k != "_metadata"]
        if len(names) > 1:
            return self.error(path, f"should only have one @-prefixed key but it has {len(names)} keys")
        if others:
            return self.error(path, f"should only have one @-prefixed key but it has {len(value)} keys")
        name = names[0]
        build = DIRECTIVES.get(name)
        if build is None:
            return self.error(path, f"has an invalid directive: {name}")
        return build(self, value[name], f"{path}/{name}")

    # Argument checks ----------------------------------------------------------------------
    def string_or_directive(self, value: Any, path: str) -> Resolver | None:
        kind = kind_of(value)
        if kind == "directive":
            return self.directive(value, path)
        if kind == "string":
            return const(value)
        self.error(path, f"should be a string or a mapping directive but it is {article(kind)} {kind}")
        return None

    def options(self, value: Any, path: str, name: str, required: tuple[str, ...] = ()) -> dict[str, Any] | None:
        if real_type(value) != "object":
            kind = kind_of(value)
            self.error(path, f"should be an object but it is {article(kind)} {kind}")
            return None
        ok = True
        for key in required:
            if key not in value:
                self.error(path, f'should have field "{key}" but it doesn\'t')
                ok = False
        return value if ok else None

    def string_option(self, opts: dict[str, Any], key: str, path: str, allowed: tuple[str, ...] = ()) -> bool:
        if key not in opts:
            return True
        v = opts[key]
        if not isinstance(v, str):
            kind = kind_of(v)
            self.error(f"{path}/{key}", f"should be a string but it is {article(kind)} {kind}")
            return False
        if allowed and v not in allowed:
            hint = " (Segment only runs the lowercase form)" if v.lower() in allowed else ""
            self.error(f"{path}/{key}", f"should be one of {', '.join(allowed)} but it is {json_stringify(v)}{hint}")
            return False
        return True



class Mapping:
    """A compiled mapping: `mapping(event_tree)` returns the payload object."""

    __slots__ = ("source", "_resolve")

    def __init__(self, source: dict[str, Any], resolve: Resolver) -> None:
        self.source = source
        self._resolve = resolve

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        """Resolve against one event; raises `MappingRuntimeError` when a directive fails."""
        try:
            result = self._resolve(event)
        except MappingRuntimeError:
            raise
        except (RecursionError, ValueError, TypeError, KeyError) as exc:
            raise MappingRuntimeError(f"mapping failed: {exc}") from exc
        return result if isinstance(result, dict) else {}


def compile_mapping(mapping: Any) -> Mapping:
    """Check and compile a mapping object; raises `MappingError` listing every mistake."""
    compiler = _Compiler()
    if real_type(mapping) != "object":
        raise MappingError([("", f"should be an object but it is {article(kind_of(mapping))} {kind_of(mapping)}")])
    resolve = compiler.value(mapping, "")
    if compiler.errors:
        raise MappingError(compiler.errors)
    return Mapping(mapping, resolve)
