"""A secret setting (API key) that never prints itself."""

from __future__ import annotations

from typing import Any

__all__ = ["Secret", "secret_hook"]


class Secret:
    """Holds a credential; `repr`/`str` show a mask, `reveal()` gives the value to the HTTP layer."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: only for building auth headers."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def secret_hook(type_: type, obj: Any) -> Any:
    """msgspec `dec_hook`: build a `Secret` from a string setting."""
    if type_ is Secret:
        if not isinstance(obj, str) or not obj:
            raise ValueError("Expected a non-empty string")
        return Secret(obj)
    raise NotImplementedError(type_)
