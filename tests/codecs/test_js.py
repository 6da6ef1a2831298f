"""JavaScript's number notation, object key order and Number() (values checked against Node)."""

from __future__ import annotations

from typing import Any

import pytest

from pushstream.codecs.js import UNDEFINED, js_number, js_string, json_stringify


@pytest.mark.parametrize(("value", "text"), [
    (1e21, "1e+21"), (1.5e21, "1.5e+21"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (0.000001, "0.000001"),
    (0.0000015, "0.0000015"), (123456789012345680000.0, "123456789012345680000"), (1e300, "1e+300"),
    (2.5, "2.5"), (-0.0, "0"), (5e-324, "5e-324"), (0.05, "0.05"), (2.0, "2"), (-1234.5678, "-1234.5678"),
])
def test_numbers_are_written_as_javascript_writes_them(value: float, text: str) -> None:
    assert js_string(value) == text
    assert json_stringify([value]) == f"[{text}]"


def test_integer_like_keys_come_first_in_numeric_order_at_every_level() -> None:
    value = {"b": 1, "10": 2, "2": 3, "01": 4, "-1": 5, "k": {"z": 1, "0": 2}, "a": [{"x": 1, "7": UNDEFINED}]}
    assert json_stringify(value) == '{"2":3,"10":2,"b":1,"01":4,"-1":5,"k":{"0":2,"z":1},"a":[{"x":1}]}'
    # Only ASCII digits make an index (Python's isdigit also takes "²" and "١"): as Node writes it.
    assert json_stringify({"b": 1, "1²": 2, "١": 3, "2": 4}) == '{"2":4,"b":1,"1²":2,"١":3}'


@pytest.mark.parametrize(("text", "number"), [
    ("12345", 12345), ("1.50", 1.5), (" 7 ", 7), ("", 0), ("0x1A", 26), ("1e3", 1000), (".5", 0.5),
    ("-Infinity", float("-inf")), ("abc", UNDEFINED), ("1.5.5", UNDEFINED), ("12px", UNDEFINED),
])
def test_number_reads_strings_as_javascript_does(text: str, number: Any) -> None:
    assert js_number(text) == number if number is not UNDEFINED else js_number(text) is UNDEFINED
