"""The interface every PDE problem implements; problems are found by name in :data:`hyco.registry.PROBLEMS`.

A problem is a differentiable simulator P_theta. Learnable parameters are a flat torch vector
``theta`` (ordered as ``labels``); states cross the module boundary as torch arrays
``[B, C, *spatial]`` (see :mod:`hyco.physics.convert`) and live as PhiFlow fields inside
``step``.
"""

from __future__ import annotations

import math as pymath
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from phi import math
from phi.torch import TORCH
from phiml.backend import set_global_default_backend
from phiml.math import batch, channel

from hyco.config.schema import PhysicalModelConfig
from hyco.errors import ConfigError
from hyco.physics.convert import BATCH
from hyco.registry import PROBLEMS

# Arrays built by PhiFlow itself (zeros, grids) must be torch tensors, like ours.
set_global_default_backend(TORCH)

def available_problems() -> list[str]:
    return PROBLEMS.names()


def make_problem(cfg: PhysicalModelConfig) -> Problem:
    """Build the problem named ``cfg.name``; an unknown name lists the valid ones."""
    return PROBLEMS.build(cfg.name, cfg)


class Problem(ABC):
    """A PDE with unknown parameters, a seeded initial-condition sampler and a time step.

    A subclass is registered with ``@PROBLEMS.register("name")``; ``self.name`` is ``cfg.name``.
    """

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
        self.name = cfg.name
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
        self._jit_frame = math.jit_compile(self._frame, auxiliary_args="substeps")
        self.setup()
        self._check_bounds()

    @property
    def frame_dt(self) -> float:
        """Time between two stored frames: ``dt * substeps`` as configured."""
        return self.cfg.dt * self.cfg.substeps

    def _check_bounds(self) -> None:
        lo, hi = self.parameter_bounds()
        for name, values in (("guess", self.guess), ("truth", self.truth)):
            outside = [i for i in range(len(values)) if not lo[i] <= values[i] <= hi[i]]
            if outside:
                i = outside[0]
                raise ConfigError(
                    f"model.physical.params: {self.labels[i]} {name} is {float(values[i]):.6g}, but must be in "
                    f"[{float(lo[i]):.6g}, {float(hi[i]):.6g}] for {self.name} with this dt and grid "
                    f"(bounds: {self.bounds_rule})"
                )

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

    #: whether :meth:`step` accepts theta as a phiml tensor ``(b, param)``, one theta per state of
    #: the batch: then :meth:`rollout_seeds` runs the rollouts of several seeds (one theta each) as
    #: one batch; otherwise it runs them one after another
    batched_theta: ClassVar[bool] = False

    #: how far (in multiples of ``cfg.substeps``) a rollout may refine its time step to stay stable
    max_substep_factor: ClassVar[int] = 16
    #: what the bounds of :meth:`parameter_bounds` stand for (said in error messages)
    bounds_rule: ClassVar[str] = "guess / 1000 to guess * 1000"

    def parameter_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) float64 vectors ordered as ``labels``; the optimiser keeps theta inside.

        Explicit schemes declare the range in which :meth:`stable_substeps` can keep a rollout
        stable with at most ``max_substep_factor * cfg.substeps`` steps per frame.
        """
        return self.guess / 1000, self.guess * 1000

    def stable_substeps(self, initial: torch.Tensor, theta: torch.Tensor) -> int:
        """Steps per frame that keep the scheme stable at ``theta`` (never fewer than configured).

        ``initial`` is the rollout's start (for velocity-dependent limits). Default: as configured.
        """
        return self.cfg.substeps

    def _substeps_within_limit(self, needed: float) -> int:
        """``needed`` steps per frame rounded up, at least ``cfg.substeps``, capped at the factor."""
        limit = self.max_substep_factor * self.cfg.substeps
        return int(min(max(self.cfg.substeps, pymath.ceil(needed - 1e-9)), limit))

    @classmethod
    def example_config(cls) -> PhysicalModelConfig:
        """A small valid configuration (seconds on a CPU): the generic tests run every registered
        problem with it. Override it; the default has none."""
        raise NotImplementedError(f"{cls.__name__} has no example_config()")

    def restrict(self, fine: torch.Tensor, factor: int) -> torch.Tensor:
        """States ``[B, C, *fine spatial]`` on a grid ``factor`` times finer -> this grid.

        Cell averages over the ``factor**ndim`` fine cells that make up each cell: a cell-centred
        value of a finite-volume grid stands for its cell's mean (conserved quantities stay
        conserved), and with an even factor no fine centre sits on a coarse one to sample.
        Problems whose arrays are not all cell-centred (staggered faces) override it.
        """
        pool = (torch.nn.functional.avg_pool1d, torch.nn.functional.avg_pool2d)[self.ndim - 1]
        return pool(fine, factor)

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
    def step(self, state: Any, theta: torch.Tensor, dt: float) -> Any:
        """Advance ``state`` by one time step ``dt`` with parameters ``theta`` (flat vector)."""

    # ----- shared -----------------------------------------------------------------------------

    def _frame(self, state: Any, theta: math.Tensor, substeps: int) -> Any:
        """``substeps`` steps of ``frame_dt / substeps``: one stored frame. Traced once per shape
        and number of substeps when ``jit`` is on."""
        # one theta for the whole batch: a flat torch vector; one per state (rollout_seeds): (b, param)
        native = theta if theta.shape.batch else theta.native(["param"])
        dt = self.cfg.dt if substeps == self.cfg.substeps else self.frame_dt / substeps
        for _ in range(substeps):
            state = self.step(state, native, dt)
        return state

    def rollout(self, initial: torch.Tensor, theta: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Frames 1..num_frames after ``initial``: ``[B, num_frames, C, *spatial]``; differentiable.

        Each frame takes :meth:`stable_substeps` steps (the configured number wherever that is
        stable, so data and model share one discretisation at the truth). Frames run through
        ``math.jit_compile`` (about 10x faster on the CPU for burgers) unless a gradient is needed
        and ``cfg.jit`` is off; theta is passed as an argument, never captured, so gradients flow
        through the trace. Where the problem takes one theta per state (:attr:`batched_theta`),
        theta is handed to :meth:`step` as one copy per state, as :meth:`rollout_seeds` does, so
        that a seed's rollout and its gradient are bitwise the same alone and in a batch of seeds.
        """
        theta = theta.to(initial.device)  # theta lives on the CPU (the optimiser's side)
        substeps = self.stable_substeps(initial.detach(), theta.detach())
        return self._frames(initial, [theta], [len(initial)], substeps, num_frames)[0]

    def rollout_seeds(self, initials: list[torch.Tensor], thetas: list[torch.Tensor], num_frames: int) -> list[torch.Tensor]:
        """:meth:`rollout` of each ``initials[i]`` with its own ``thetas[i]`` (the seeds of a
        :class:`hyco.training.SeedGroup`), as one batch where the problem allows it
        (:attr:`batched_theta`) and every seed's rollout takes the same number of substeps; else
        one rollout after another. Each seed's frames and gradients are bitwise those of its own
        :meth:`rollout`: the operations are elementwise per state, and the gradient of each theta
        is summed over its own states in the same order."""
        thetas = [t.to(x.device) for x, t in zip(initials, thetas)]
        substeps = {self.stable_substeps(x.detach(), t.detach()) for x, t in zip(initials, thetas)}
        if len(initials) == 1 or not self.batched_theta or len(substeps) > 1 or len({x.shape[1:] for x in initials}) > 1:
            return [self.rollout(x, t, num_frames) for x, t in zip(initials, thetas)]
        return self._frames(torch.cat(initials), thetas, [len(x) for x in initials], substeps.pop(), num_frames)

    def _frames(self, initial: torch.Tensor, thetas: list[torch.Tensor], sizes: list[int], substeps: int,
                num_frames: int) -> list[torch.Tensor]:
        """The rollout of the batch ``initial``, whose first ``sizes[0]`` states run with
        ``thetas[0]``, the next ``sizes[1]`` with ``thetas[1]``, ...; split back by ``sizes``."""
        tic = time.perf_counter()
        state = self.to_state(initial)
        converting = time.perf_counter() - tic
        # forward-only rollouts are traced even with jit off: traced frames are bitwise equal;
        # `jit` decides only whether gradients go through the trace (they differ for smoke's CG)
        needs_grad = torch.is_grad_enabled() and (any(t.requires_grad for t in thetas) or initial.requires_grad)
        frame = self._jit_frame if self.cfg.jit or not needs_grad else self._frame
        params = channel(param=",".join(self.labels))
        if self.batched_theta:  # one theta per state: (b, param)
            per_state = torch.cat([t.expand(n, -1) for t, n in zip(thetas, sizes)])
            theta_tensor = math.tensor(per_state, batch(BATCH), params)
        else:
            theta_tensor = math.tensor(thetas[0], params)
        frames = []
        for _ in range(num_frames):
            state = frame(state, theta_tensor, substeps=substeps)
            tic = time.perf_counter()
            frames.append(self.to_array(state))
            converting += time.perf_counter() - tic
        self.conversion_seconds += converting
        return list(torch.stack(frames, dim=1).split(sizes))
