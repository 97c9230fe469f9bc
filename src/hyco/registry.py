"""One way to plug things in: problems, synthetic models, trainers, optimisers and metrics by name.

A :class:`Registry` maps a name to an entry (a class or a function). ``register(name)`` is a
decorator; ``build(name, *args, **options)`` calls the entry; an unknown name, or an option the
entry does not take, is one :class:`~hyco.errors.ConfigError` naming the config key and listing
what is valid. Components validate their own options when they are built.

The registries live here, at the bottom of the layers, so that the config layer can ask them
without importing what sits above it. The modules that hold the built-in entries are imported
by name on the first lookup (as plugin entry points are); a user's own component is registered
by importing the module that defines it before the config is loaded.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from hyco.errors import ConfigError

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Entries of one kind found by name (``key``: the config key that holds the name)."""

    def __init__(self, kind: str, key: str, options_key: str | None = None, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self.key = key
        self.options_key = options_key
        self._builtins = builtins
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make ``entry`` available as ``name`` (a second entry under a name is an error)."""

        def add(entry: T) -> T:
            known = self._entries.get(name)
            if known is not None and known is not entry:
                raise ValueError(f"a {self.kind} named {name!r} is already registered ({known!r})")
            self._entries[name] = entry
            return entry

        return add

    def _load_builtins(self) -> None:
        modules, self._builtins = self._builtins, ()
        for module in modules:
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name lists the known ones."""
        self._load_builtins()
        if name not in self._entries:
            raise ConfigError(f"{self.key} is {name!r}, but must be one of {self.names()} (registered {self.kind}s)")
        return self._entries[name]

    def build(self, name: str, *args: Any, **options: Any) -> Any:
        """``entry(*args, **options)``; an option the entry does not accept is a ConfigError."""
        entry = self.get(name)
        try:
            inspect.signature(entry).bind(*args, **options)
        except TypeError as exc:
            accepted = [p for p in inspect.signature(entry).parameters if p not in ("self", "args", "kwargs")]
            where = self.options_key or self.key
            raise ConfigError(f"{where}: {exc} for {self.kind} {name!r}; it accepts {accepted}") from None
        return entry(*args, **options)


#: PDE problems (``model.physical.name``): classes built as ``cls(PhysicalModelConfig)``
PROBLEMS: Registry = Registry("problem", "model.physical.name", "model.physical.options", ("hyco.physics",))
#: synthetic networks (``model.synthetic.name``): ``cls(ndim=, channels=, periodic=, **options)``
MODELS: Registry = Registry("synthetic model", "model.synthetic.name", "model.synthetic.options", ("hyco.models",))
#: trainers (``run_params.model_type``): ``cls(cfg, problem=, model=, dataset=, device=)``
TRAINERS: Registry = Registry("trainer", "run_params.model_type", builtins=("hyco.training",))
#: optimisers of the network (``trainer_params.synthetic.optimizer``): ``fn(parameters, lr=)``
OPTIMIZERS: Registry = Registry("optimizer", "trainer_params.synthetic.optimizer", builtins=("hyco.training",))
#: optimisers of theta (``trainer_params.physical.method``): ``fn(trainer, evaluate, z0, track)``
#: -> (z, iterations, evaluations, message, converged, diverged); see hyco.training.physical
THETA_OPTIMIZERS: Registry = Registry("theta optimizer", "trainer_params.physical.method", builtins=("hyco.training",))
#: validation metrics (``trainer_params.metric``): ``fn(pred, truth) -> scalar tensor``, lower is better
METRICS: Registry = Registry("metric", "trainer_params.metric", builtins=("hyco.training",))
