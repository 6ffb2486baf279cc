"""One generic registry (register / get / list), reused for boards, runtimes and models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tinyshare.errors import TinyshareError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → item map whose lookup errors list the known names.

    Args:
        kind: what the items are, for messages ("board", "runtime", "model").
        error: the ``TinyshareError`` subclass raised for an unknown name.
    """

    def __init__(self, kind: str, error: type[TinyshareError] = TinyshareError) -> None:
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        """Add ``item`` under ``name``.

        Raises:
            TinyshareError (the registry's error type): ``name`` is taken and
                ``replace`` is false.
        """
        if name in self._items and not replace:
            raise self._error(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""
        return lambda item: self.register(name, item)

    def get(self, name: str) -> T:
        """Return the item for ``name``.

        Raises:
            TinyshareError (the registry's error type): unknown ``name``; the message
                lists the known names.
        """
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise self._error(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
