"""Viscous Burgers' equation u_t + (u . grad) u = nu * lap(u), periodic, 1D or 2D.

Explicit (forward) Euler in time; second-order central differences in space for both terms:
``diffuse.differential`` (the 3-point Laplacian) and ``advect.differential`` (central gradient,
which returns the rate ``-(u . grad) u`` with its sign, so it is added). No upwinding, hence no
numerical diffusion: the scheme is second order in dx and first order in dt. It works with
torch in 1D (``advect.semi_lagrangian`` does not in phiflow 3.4). Stable while
``nu dt / dx^2 <= 1 / (2 ndim)`` and the cell Reynolds number ``max|u| dx / nu`` stays below 2.
Learnable: the scalar viscosity ``viscosity``.
"""

from __future__ import annotations

import math as pymath

import torch
from phi import math
from phi.field import Field
from phi.geom import Box
from phi.math import extrapolation
from phi.physics import advect, diffuse

from hyco.config.schema import ParameterSpec, PhysicalModelConfig
from hyco.physics.base import Problem
from hyco.physics.convert import centered_to_tensor, spatial_names, tensor_to_centered
from hyco.registry import PROBLEMS


@PROBLEMS.register("burgers")
class Burgers(Problem):
    parameters = {"viscosity": 1}
    option_defaults = {"domain_size": 2 * pymath.pi, "modes": 4, "max_velocity": 1.0}
    ranks = (1, 2)
    periodic = True

    batched_theta = True
    bounds_rule = "where at most 16x the configured substeps keep the explicit scheme stable"

    @classmethod
    def example_config(cls) -> PhysicalModelConfig:
        return PhysicalModelConfig(name="burgers", resolution=[32], dt=0.01, substeps=1,
                                   params={"viscosity": ParameterSpec(truth=[0.05], guess=[0.15])})

    def setup(self) -> None:
        size = float(self.options["domain_size"])
        self.bounds = Box(**{name: size for name in spatial_names(self.ndim)})
        self.dx = size / max(self.resolution)

    def _stable_dt(self, viscosity: float, max_velocity: float) -> float:
        """Forward Euler with central differences (von Neumann, 90 % margin): diffusion needs
        ``nu dt / dx^2 <= 1 / (2 ndim)``, central advection ``dt <= 2 nu / (ndim max|u|^2)``."""
        diffusion = self.dx**2 / (2 * self.ndim * viscosity)
        advection = 2 * viscosity / (self.ndim * max_velocity**2) if max_velocity > 0 else pymath.inf
        return 0.9 * min(diffusion, advection)

    def parameter_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.max_substep_factor * self.cfg.substeps
        u_ref = 1.5 * float(self.options["max_velocity"])  # noisy starts exceed max_velocity a little
        hi = 0.9 * self.dx**2 / (2 * self.ndim) * steps / self.frame_dt
        lo = self.ndim * u_ref**2 * self.frame_dt / (2 * 0.9 * steps)
        return torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64)

    def stable_substeps(self, initial: torch.Tensor, theta: torch.Tensor) -> int:
        u_max = float(initial.abs().max()) if initial.numel() else 0.0
        return self._substeps_within_limit(self.frame_dt / self._stable_dt(float(theta[0]), u_max))

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(f"u_{name}" for name in spatial_names(self.ndim))

    @property
    def array_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.resolution))

    def sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Sums of random sine modes per component, scaled to max|u| = ``max_velocity``."""
        modes = int(self.options["modes"])
        size = float(self.options["domain_size"])
        coords = [(torch.arange(r, dtype=torch.float64) + 0.5) * size / r for r in self.array_shape]
        grids = torch.meshgrid(*coords, indexing="ij")  # array order (y, x)
        u = torch.zeros((n, self.ndim, *self.array_shape), dtype=torch.float64)
        ones = [1] * self.ndim
        for k in range(1, modes + 1):
            amp = torch.randn((n, self.ndim, self.ndim), generator=generator, dtype=torch.float64)
            phase = 2 * pymath.pi * torch.rand((n, self.ndim), generator=generator, dtype=torch.float64)
            for axis, grid in enumerate(grids):
                wave = torch.sin(2 * pymath.pi * k * grid / size + phase[:, axis].reshape(n, *ones))
                u += amp[:, :, axis].reshape(n, self.ndim, *ones) * wave[:, None] / k
        peak = u.abs().flatten(1).amax(dim=1).clamp_min(1e-12)
        u = u / peak.reshape(n, *[1] * (u.dim() - 1)) * float(self.options["max_velocity"])
        return u.float()

    def to_state(self, array: torch.Tensor) -> Field:
        return tensor_to_centered(array, self.bounds, extrapolation.PERIODIC, vector=True)

    def to_array(self, state: Field) -> torch.Tensor:
        return centered_to_tensor(state)

    def step(self, state: Field, theta: torch.Tensor, dt: float) -> Field:
        # theta: a flat vector, or one per state of the batch (rollout_seeds): a tensor (b, param)
        viscosity = theta.param[0] if isinstance(theta, math.Tensor) else math.wrap(theta[0])
        rate = diffuse.differential(state, viscosity) + advect.differential(state, state)  # advect gives -(u.grad)u
        return state + dt * rate
