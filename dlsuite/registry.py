"""A small name -> object registry shared by tasks and architectures."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from dlsuite.errors import DlsuiteError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to registered objects and explains unknown names.

    Args:
        kind: what the registry holds, used in error messages ("task").
        list_command: the CLI command that lists the valid names.
    """

    def __init__(self, kind: str, list_command: str):
        self.kind = kind
        self.list_command = list_command
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise DlsuiteError(unknown_name_message(self.kind, name, self.names(), self.list_command))
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_name_message(kind: str, name: str, valid: list[str], list_command: str | None = None) -> str:
    """One line naming the bad value, the closest valid one and all valid ones."""
    close = [v for v in valid if str(name) and str(name).lower() in v] or difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = f" (`{list_command}` describes them)" if list_command else ""
    return f"unknown {kind} {name!r}.{hint} Valid: {', '.join(valid)}{listing}."
