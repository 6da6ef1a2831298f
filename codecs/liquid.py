"""The `@liquid` directive: Liquid templates with Segment's restrictions.

Segment renders with LiquidJS, at most 1,000 characters, with the tags `case`, `for`,
`include`, `layout`, `render`, `tablerow` and a list of array filters disabled. We use
python-liquid with the same tags and filters removed, so a template that uses them is
refused when the config loads instead of failing per event. Without loops a template's
work is bounded by its length, which stands in for LiquidJS's 500 ms render limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import liquid.builtin.output as _liquid_output
from liquid import Environment
from liquid.exceptions import LiquidError
from liquid.stringify import to_liquid_string

from .js import UNDEFINED, js_string
from .mapping_errors import MappingRuntimeError

__all__ = ["LiquidTemplateError", "compile_liquid"]

DISABLED_TAGS = ("case", "for", "include", "layout", "render", "tablerow")
DISABLED_FILTERS = (
    "array_to_sentence_string", "concat", "find", "find_exp", "find_index", "find_index_exp",
    "group_by", "group_by_exp", "has", "has_exp", "map", "newline_to_br", "reject", "reject_exp",
    "reverse", "sort", "sort_natural", "uniq", "where_exp", "type",
)


_FILTER_USE = re.compile(r"\|\s*([A-Za-z_][A-Za-z0-9_]*)")


class LiquidTemplateError(ValueError):
    """The template does not parse, or uses a tag or filter Segment disables."""


class _SegmentLiquid(Environment):
    output_stream_limit = 100_000
    context_depth_limit = 30


#: Filters that read their input as a string (LiquidJS stringifies it first).
STRING_FILTERS = (
    "append", "capitalize", "downcase", "escape", "escape_once", "lstrip", "prepend", "remove", "remove_first",
    "remove_last", "replace", "replace_first", "replace_last", "rstrip", "split", "strip", "strip_html",
    "strip_newlines", "truncate", "truncatewords", "upcase", "url_decode", "url_encode", "base64_encode",
    "base64_decode", "base64_url_safe_encode", "base64_url_safe_decode",
)


def liquidjs_string(value: Any) -> str:
    """How LiquidJS writes a value: numbers the JavaScript way (11, not 11.0), arrays as their
    items joined with nothing, objects as `[object Object]`, null as nothing."""
    if isinstance(value, str):
        return value
    if value is None or value is UNDEFINED:
        return ""
    if isinstance(value, list):
        return "".join(liquidjs_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return js_string(value)


def _js_liquid_string(value: Any, autoescape: bool) -> str:
    # python-liquid offers no hook for how values are written; its output node's stringifier is
    # replaced for the JSON values LiquidJS writes differently.
    if isinstance(value, (float, list, dict)) or value is UNDEFINED:
        return liquidjs_string(value)
    return to_liquid_string(value, autoescape)


def _stringified(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def string_filter(value: Any, *args: Any, **kwargs: Any) -> Any:
        return function(value if value is None else liquidjs_string(value), *args, **kwargs)

    string_filter.__name__ = name
    return string_filter


# Liquid renders every output through this module global: JavaScript's String() rules replace it.
_liquid_output.to_liquid_string = _js_liquid_string  # type: ignore[attr-defined,assignment]  # liquid does not re-export it; its signature differs
_ENV = _SegmentLiquid()
for _tag in DISABLED_TAGS:
    _ENV.tags.pop(_tag, None)
for _filter in DISABLED_FILTERS:
    _ENV.filters.pop(_filter, None)
for _filter in STRING_FILTERS:
    if _filter in _ENV.filters:
        _ENV.filters[_filter] = _stringified(_filter, _ENV.filters[_filter])


def compile_liquid(source: str) -> Callable[[Any], Any]:
    """Parse once; the returned callable renders one event tree to a string."""
    if source == "":
        return lambda payload: ""
    disabled = sorted(set(_FILTER_USE.findall(source)) & set(DISABLED_FILTERS))
    if disabled:
        raise LiquidTemplateError(f"liquid: filter {', '.join(disabled)} is disabled (as in Segment)")
    try:
        template = _ENV.from_string(source)
    except LiquidError as exc:
        raise LiquidTemplateError(f"liquid: {exc.message if hasattr(exc, 'message') else exc}") from exc

    def render(payload: Any) -> Any:
        data = payload if isinstance(payload, dict) else {}
        try:
            return template.render(**{k: v for k, v in data.items() if v is not UNDEFINED})
        except LiquidError as exc:
            raise MappingRuntimeError(f"liquid: {exc}") from exc

    return render
