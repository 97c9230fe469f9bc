"""2D heat equation T_t = div(kappa(x) grad T) with a spatially varying diffusivity, periodic.

kappa(x) = kappa0 + sum_i a_i exp(-|x - c_i|^2 / (2 w^2)); the bump amplitudes ``amplitudes``
are learnable; the centres ``c_i`` are options, or learnable too with ``learn_centres: true``
(then ``params.centres`` holds x0, y0, x1, y1, ...). The width ``w`` is an option. Conservative flux form on cell
faces, explicit Euler (stable for dt < dx^2 / (4 max kappa)); a rollout takes more steps per
frame where theta needs them (:meth:`Heat.stable_substeps`).
"""

from __future__ import annotations

import math as pymath

import torch
from phi import math
from phi.field import Field
from phi.geom import Box
from phi.math import extrapolation
from phiml.math import spatial

from hyco.config.schema import ParameterSpec, PhysicalModelConfig
from hyco.errors import ConfigError
from hyco.physics.base import Problem
from hyco.physics.convert import centered_to_tensor, tensor_to_centered
from hyco.registry import PROBLEMS


@PROBLEMS.register("heat")
class Heat(Problem):
    parameters = {"amplitudes": None}
    option_defaults = {
        "kappa0": 0.005,
        "centres": [[0.25, 0.3], [0.7, 0.3], [0.45, 0.75]],
        "width": 0.12,
        "modes": 3,
        "learn_centres": False,
    }
    ranks = (2,)
    periodic = True
    bounds_rule = "amplitudes where at most 16x the configured substeps keep the explicit scheme stable, centres in (0, 1]"

    @classmethod
    def example_config(cls) -> PhysicalModelConfig:
        return PhysicalModelConfig(name="heat", resolution=[16, 12], dt=0.002, substeps=5,
                                   params={"amplitudes": ParameterSpec(truth=[0.02, 0.015, 0.01], guess=[0.06, 0.045, 0.03])})

    def parameter_sizes(self) -> dict[str, int | None]:
        if self.options["learn_centres"]:
            return {"amplitudes": None, "centres": None}
        return {"amplitudes": None}

    def setup(self) -> None:
        self.num_bumps = sum(1 for label in self.labels if label.startswith("amplitudes"))
        if self.options["learn_centres"]:
            found = len(self.labels) - self.num_bumps
            if found != 2 * self.num_bumps:
                raise ConfigError(
                    f"model.physical.params.centres has {found} entries, but needs x, y for each of the "
                    f"{self.num_bumps} amplitudes ({2 * self.num_bumps})"
                )
            self.fixed_centres = None
        else:
            centres = [list(c) for c in self.options["centres"]]
            if len(centres) != self.num_bumps or any(len(c) != 2 for c in centres):
                raise ConfigError(
                    f"model.physical.options.centres has {len(centres)} entries, but needs one [x, y] "
                    f"pair per amplitude ({self.num_bumps})"
                )
            self.fixed_centres = torch.tensor(centres, dtype=torch.float32)
        self.bounds = Box(x=1, y=1)
        ny, nx = self.array_shape
        self.ys, self.xs = torch.meshgrid((torch.arange(ny) + 0.5) / ny, (torch.arange(nx) + 0.5) / nx, indexing="ij")

    def _stable_dt(self, kappa_max: float) -> float:
        """Forward Euler, 5-point flux form: ``dt <= 1 / (2 kappa (1/dx^2 + 1/dy^2))``, 90 % margin."""
        inverse_dx2 = sum(n**2 for n in self.resolution)  # unit square: 1/dx^2 = nx^2
        return 0.9 / (2 * kappa_max * inverse_dx2)

    def parameter_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.max_substep_factor * self.cfg.substeps
        kappa_limit = 0.9 / (2 * sum(n**2 for n in self.resolution)) * steps / self.frame_dt
        kappa0 = float(self.options["kappa0"])
        if kappa_limit <= kappa0:
            raise ConfigError(
                f"model.physical.dt is {self.cfg.dt}: with resolution {list(self.resolution)} even kappa0 = {kappa0} "
                f"alone needs more than {steps} steps per frame to be stable; lower model.physical.dt"
            )
        amp_hi = (kappa_limit - kappa0) / self.num_bumps  # the bumps may overlap
        lo = [1e-12] * self.num_bumps + [1e-3] * (len(self.labels) - self.num_bumps)
        hi = [amp_hi] * self.num_bumps + [1.0] * (len(self.labels) - self.num_bumps)
        return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)

    def stable_substeps(self, initial: torch.Tensor, theta: torch.Tensor) -> int:
        kappa_max = float(self.diffusivity(theta.to(torch.float64)).max())
        return self._substeps_within_limit(self.frame_dt / self._stable_dt(kappa_max))

    @property
    def channels(self) -> tuple[str, ...]:
        return ("T",)

    @property
    def array_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.resolution))

    def diffusivity(self, theta: torch.Tensor) -> torch.Tensor:
        """kappa on cell centres, ``[Y, X]``; differentiable in amplitudes (and centres)."""
        n = self.num_bumps
        amps = theta[:n].reshape(n, 1, 1)
        centres = theta[n:].reshape(n, 2) if self.fixed_centres is None else self.fixed_centres.to(theta)
        xs, ys = self.xs.to(theta), self.ys.to(theta)
        # periodic distance, so a bump near an edge wraps around like the domain
        dx = torch.remainder(xs[None] - centres[:, 0, None, None] + 0.5, 1.0) - 0.5
        dy = torch.remainder(ys[None] - centres[:, 1, None, None] + 0.5, 1.0) - 0.5
        width = float(self.options["width"])
        bumps = torch.exp(-(dx**2 + dy**2) / (2 * width**2))
        return float(self.options["kappa0"]) + (amps * bumps).sum(0)

    def sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Smooth random fields: random Fourier modes up to ``modes``, scaled to [0, 1]."""
        ny, nx = self.array_shape
        ys, xs = torch.meshgrid(
            (torch.arange(ny, dtype=torch.float64) + 0.5) / ny,
            (torch.arange(nx, dtype=torch.float64) + 0.5) / nx,
            indexing="ij",
        )
        modes = int(self.options["modes"])
        temp = torch.zeros((n, ny, nx), dtype=torch.float64)
        for kx in range(modes + 1):
            for ky in range(modes + 1):
                if kx == ky == 0:
                    continue
                amp = torch.randn((n, 1, 1), generator=generator, dtype=torch.float64)
                phase = 2 * pymath.pi * torch.rand((n, 1, 1), generator=generator, dtype=torch.float64)
                temp += amp * torch.cos(2 * pymath.pi * (kx * xs + ky * ys) + phase) / (kx + ky)
        lo = temp.flatten(1).amin(1).reshape(n, 1, 1)
        hi = temp.flatten(1).amax(1).reshape(n, 1, 1)
        return ((temp - lo) / (hi - lo)).float()[:, None]

    def to_state(self, array: torch.Tensor) -> Field:
        return tensor_to_centered(array, self.bounds, extrapolation.PERIODIC, vector=False)

    def to_array(self, state: Field) -> torch.Tensor:
        return centered_to_tensor(state)

    def step(self, state: Field, theta: torch.Tensor, dt: float) -> Field:
        kappa = math.tensor(self.diffusivity(theta).T, spatial("x,y"))
        temp = state.values
        rate = 0
        for axis, dx in zip(("x", "y"), (1 / self.resolution[0], 1 / self.resolution[1])):
            here, ahead = math.shift(temp, (0, 1), dims=axis, padding=extrapolation.PERIODIC, stack_dim=None)
            k_here, k_ahead = math.shift(kappa, (0, 1), dims=axis, padding=extrapolation.PERIODIC, stack_dim=None)
            flux = 0.5 * (k_here + k_ahead) * (ahead - here) / dx  # on the face between i and i+1
            behind, flux_here = math.shift(flux, (-1, 0), dims=axis, padding=extrapolation.PERIODIC, stack_dim=None)
            rate = rate + (flux_here - behind) / dx
        return state.with_values(temp + dt * rate)
