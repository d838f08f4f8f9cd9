"""A tiny name -> factory registry, one per model stage.

A new backend is one new module plus one ``@REGISTRY.register("name", gpu=...)``
line: the backend declares there what it needs (a GPU or not, its own conda env),
the config names it, and the stage runner and the DAG ask the registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownBackendError(KeyError):
    """A config named a backend that no module registered."""

    def __str__(self) -> str:  # KeyError quotes its message; say it plainly
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class BackendNeeds:
    """What a backend needs from the machine that runs its job.

    ``gpu``: the job should get a GPU (Snakemake ``resources: gpu``, SLURM ``--gpus``).
    ``env``: conda env file stem under ``envs/`` when it is not the stage's own.
    ``options``: the keyword options the factory accepts (checked at DAG build).
    ``mem_mb``: peak memory of one job, so Snakemake never runs more at once than fit.
    """

    gpu: bool = False
    env: str | None = None
    options: frozenset[str] | None = None
    mem_mb: int | None = None  # peak memory of one job (None: the stage's default)


class Registry(Generic[T]):
    """Maps config names to backend factories for one stage.

    ``package``: the package whose modules register the backends; :meth:`load_all`
    imports them (cheap: backends import their heavy libraries when created).
    """

    def __init__(self, stage: str, package: str | None = None) -> None:
        self.stage = stage
        self.package = package
        self._factories: dict[str, Callable[..., T]] = {}
        self._needs: dict[str, BackendNeeds] = {}
        self._loaded = False

    def register(
        self,
        name: str,
        *,
        gpu: bool = False,
        env: str | None = None,
        options: Iterable[str] | None = None,
        mem_mb: int | None = None,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.stage} backend {name!r} registered twice")
            self._factories[name] = factory
            accepted = frozenset(options) if options is not None else _keyword_options(factory)
            self._needs[name] = BackendNeeds(gpu=gpu, env=env, options=accepted, mem_mb=mem_mb)
            return factory

        return decorate

    def load_all(self) -> Registry[T]:
        """Import every backend module of the stage package (registration by import); once."""
        if self.package is not None and not self._loaded:
            package = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_") and info.name not in ("base", "run", "job"):
                    importlib.import_module(f"{self.package}.{info.name}")
            self._loaded = True
        return self

    def create(self, name: str, **options: object) -> T:
        return self.factory(name)(**options)

    def factory(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownBackendError(
                f"unknown {self.stage} backend {name!r} (known: {known})"
            ) from None

    def needs(self, name: str) -> BackendNeeds:
        self.factory(name)  # unknown names fail with the list of known ones
        return self._needs[name]

    def check_options(self, name: str, options: dict[str, Any]) -> list[str]:
        """Option names ``name``'s factory does not accept (empty when all are known)."""
        accepted = self.needs(name).options
        if accepted is None:
            return []
        return sorted(set(options) - accepted)

    def get(self, name: str) -> Callable[..., T]:
        """The factory (usually the backend class) without creating it: class facts such as
        an ALM's ``sample_rate`` are read at DAG build time, before any model loads."""
        return self.factory(name)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories


def _keyword_options(factory: Callable[..., Any]) -> frozenset[str] | None:
    """Keyword parameters of a factory (a class's ``__init__``); None if it takes ``**kw``."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
