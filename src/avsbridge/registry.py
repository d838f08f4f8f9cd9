"""A tiny name -> factory registry, one per model stage.

A new backend is one new module plus one ``@REGISTRY.register("name")`` line; the
config names the backend, the stage runner asks the registry for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownBackendError(KeyError):
    """A config named a backend that no module registered."""


class Registry(Generic[T]):
    """Maps config names to backend factories for one stage."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.stage} backend {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return decorate

    def factory(self, name: str) -> Callable[..., T]:
        """The registered factory itself (class attributes such as ``needs_gpu`` live there)."""
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownBackendError(
                f"unknown {self.stage} backend {name!r} (known: {known})"
            ) from None

    def create(self, name: str, **options: object) -> T:
        return self.factory(name)(**options)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
