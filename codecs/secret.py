"""A secret setting (API key) that never prints itself."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Secret", "credential_header", "resolve_env", "secret_hook"]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_CREDENTIAL = re.compile(r"(^|[-_])(authorization|cookie|signature|key|token|secret|password|apikey)$", re.I)


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


def resolve_env(value: Any, where: str, env: dict[str, str], errors: list[str]) -> Any:
    """`"${NAME}"` -> the environment variable NAME (a mistake in `errors` when it is unset or
    empty; then a placeholder, so that other checks stay meaningful); any other value as it is."""
    m = _ENV_REF.match(value) if isinstance(value, str) else None
    if m is None:
        return value
    name = m.group(1)
    if name not in env:
        errors.append(f"{where}: environment variable {name} is not set")
    elif not env[name]:
        errors.append(f"{where}: environment variable {name} is empty")
    return env.get(name) or "unset"


def credential_header(name: str) -> bool:
    """Whether a header's (or query parameter's) value is a credential, masked wherever people read
    it: Authorization, Cookie, X-Signature, *-Key, *-Token, *-Secret, *_password, apikey, ..."""
    return _CREDENTIAL.search(name) is not None
