"""The mapping kit's errors, apart so that the compiler, its directives and the liquid renderer
can all raise them without importing each other."""

from __future__ import annotations

__all__ = ["MappingError", "MappingRuntimeError"]


class MappingError(ValueError):
    """A mapping Segment would refuse, or that cannot do what it says; lists every mistake."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path or '/'} {msg}" for path, msg in errors))


class MappingRuntimeError(ValueError):
    """A directive failed while resolving one event (the event is rejected, not retried)."""

