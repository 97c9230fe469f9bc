"""The interface every PDE problem implements, plus the registry that finds problems by name.

A problem is a differentiable simulator P_theta. Learnable parameters are a flat torch vector
``theta`` (ordered as ``labels``); states cross the module boundary as torch arrays
``[B, C, *spatial]`` (see :mod:`hyco.physics.convert`) and live as PhiFlow fields inside
``step``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from phi import math
from phi.torch import TORCH
from phiml.backend import set_global_default_backend
from phiml.math import channel

from hyco.config.schema import PhysicalModelConfig
from hyco.errors import ConfigError

# Arrays built by PhiFlow itself (zeros, grids) must be torch tensors, like ours.
set_global_default_backend(TORCH)

PROBLEMS: dict[str, type[Problem]] = {}


def register_problem(cls: type[Problem]) -> type[Problem]:
    """Class decorator: make a problem available under ``cls.name``."""
    PROBLEMS[cls.name] = cls
    return cls


def available_problems() -> list[str]:
    return sorted(PROBLEMS)


def make_problem(cfg: PhysicalModelConfig) -> Problem:
    """Build the problem named ``cfg.name``; an unknown name lists the valid ones."""
    if cfg.name not in PROBLEMS:
        raise ConfigError(
            f"model.physical.name is {cfg.name!r}, but must be one of {available_problems()}"
        )
    return PROBLEMS[cfg.name](cfg)


class Problem(ABC):
    """A PDE with unknown parameters, a seeded initial-condition sampler and a time step."""

    name: ClassVar[str]
    #: learnable parameter names -> number of entries (None: any number >= 1)
    parameters: ClassVar[dict[str, int | None]]
    #: problem-specific options and their defaults; anything else is rejected
    option_defaults: ClassVar[dict[str, Any]] = {}
    #: allowed spatial ranks
    ranks: ClassVar[tuple[int, ...]]
    #: whether every boundary is periodic (networks pad circularly then)
    periodic: ClassVar[bool]

    def __init__(self, cfg: PhysicalModelConfig):
        self.cfg = cfg
        self.resolution = tuple(int(n) for n in cfg.resolution)
        prefix = "model.physical"
        if len(self.resolution) not in self.ranks:
            raise ConfigError(
                f"{prefix}.resolution is {list(self.resolution)}: {self.name} supports "
                f"{' or '.join(f'{r}D' for r in self.ranks)} (one entry per axis)"
            )
        if any(n < 4 for n in self.resolution):
            raise ConfigError(f"{prefix}.resolution is {list(self.resolution)}, but each entry must be >= 4")
        if not cfg.dt > 0:
            raise ConfigError(f"{prefix}.dt is {cfg.dt}, but must be > 0")
        if cfg.substeps < 1:
            raise ConfigError(f"{prefix}.substeps is {cfg.substeps}, but must be >= 1")
        unknown = set(cfg.options) - set(self.option_defaults)
        if unknown:
            raise ConfigError(
                f"{prefix}.options has unknown key(s) {sorted(unknown)}; {self.name} accepts "
                f"{sorted(self.option_defaults) or 'none'}"
            )
        self.options = {**self.option_defaults, **dict(cfg.options)}
        self.labels, truth, guess = self._read_parameters(cfg)
        self.truth = torch.tensor(truth, dtype=torch.float64)
        self.guess = torch.tensor(guess, dtype=torch.float64)
        self.ndim = len(self.resolution)
        #: seconds spent converting between arrays and PhiFlow fields in `rollout` (a seed metric)
        self.conversion_seconds = 0.0
        self._jit_frame = math.jit_compile(self._frame)
        self.setup()

    def parameter_sizes(self) -> dict[str, int | None]:
        """Learnable parameters for these options (names -> entries, None: any number >= 1)."""
        return self.parameters

    def _read_parameters(self, cfg: PhysicalModelConfig) -> tuple[list[str], list[float], list[float]]:
        sizes = self.parameter_sizes()
        missing = set(sizes) - set(cfg.params)
        extra = set(cfg.params) - set(sizes)
        if missing or extra:
            raise ConfigError(
                f"model.physical.params has keys {sorted(cfg.params)}, but {self.name} with these "
                f"options needs exactly {sorted(sizes)}"
            )
        labels: list[str] = []
        truth: list[float] = []
        guess: list[float] = []
        for pname, size in sizes.items():
            spec = cfg.params[pname]
            n = len(spec.truth)
            if n == 0 or (size is not None and n != size) or len(spec.guess) != n:
                want = f"{size}" if size is not None else "the same number (>= 1)"
                raise ConfigError(
                    f"model.physical.params.{pname}: truth has {n} and guess {len(spec.guess)} "
                    f"entries, but both need {want}"
                )
            for i, (t, g) in enumerate(zip(spec.truth, spec.guess)):
                if not (t > 0 and g > 0):
                    raise ConfigError(
                        f"model.physical.params.{pname}[{i}] is truth={t}, guess={g}, "
                        "but physical parameters here must be > 0"
                    )
            labels += [pname] if n == 1 and size == 1 else [f"{pname}[{i}]" for i in range(n)]
            truth += [float(v) for v in spec.truth]
            guess += [float(v) for v in spec.guess]
        return labels, truth, guess

    def setup(self) -> None:
        """Hook for problem-specific precomputation after validation."""
        return None

    # ----- the problem-specific part -------------------------------------------------------

    @property
    @abstractmethod
    def channels(self) -> tuple[str, ...]:
        """Names of the channels of a state array."""

    @property
    @abstractmethod
    def array_shape(self) -> tuple[int, ...]:
        """Spatial shape of a state array (array order, last axis x)."""

    @abstractmethod
    def sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random initial states ``[n, C, *spatial]`` drawn from ``generator``."""

    @abstractmethod
    def to_state(self, array: torch.Tensor) -> Any:
        """State array -> the PhiFlow state ``step`` works on."""

    @abstractmethod
    def to_array(self, state: Any) -> torch.Tensor:
        """PhiFlow state -> state array (inverse of ``to_state``)."""

    @abstractmethod
    def step(self, state: Any, theta: torch.Tensor) -> Any:
        """Advance ``state`` by one time step ``cfg.dt`` with parameters ``theta`` (flat vector)."""

    # ----- shared -----------------------------------------------------------------------------

    def _frame(self, state: Any, theta: math.Tensor) -> Any:
        """``substeps`` steps: one stored frame. Traced once per shape when ``jit`` is on."""
        native = theta.native(["param"])
        for _ in range(self.cfg.substeps):
            state = self.step(state, native)
        return state

    def rollout(self, initial: torch.Tensor, theta: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Frames 1..num_frames after ``initial``: ``[B, num_frames, C, *spatial]``; differentiable.

        Frames run through ``math.jit_compile`` (about 10x faster on the CPU for burgers) unless a
        gradient is needed and ``cfg.jit`` is off; theta is passed as an argument, never
        captured, so gradients flow through the trace.
        """
        tic = time.perf_counter()
        state = self.to_state(initial)
        converting = time.perf_counter() - tic
        # forward-only rollouts are traced even with jit off: traced frames are bitwise equal;
        # `jit` decides only whether gradients go through the trace (they differ for smoke's CG)
        needs_grad = torch.is_grad_enabled() and (theta.requires_grad or initial.requires_grad)
        frame = self._jit_frame if self.cfg.jit or not needs_grad else self._frame
        theta_tensor = math.tensor(theta, channel(param=",".join(self.labels)))
        frames = []
        for _ in range(num_frames):
            state = frame(state, theta_tensor)
            tic = time.perf_counter()
            frames.append(self.to_array(state))
            converting += time.perf_counter() - tic
        self.conversion_seconds += converting
        return torch.stack(frames, dim=1)
