"""2D heat equation T_t = div(kappa(x) grad T) with a spatially varying diffusivity, periodic.

kappa(x) = kappa0 + sum_i a_i exp(-|x - c_i|^2 / (2 w^2)); the bump amplitudes ``amplitudes``
are learnable, centres ``c_i`` and width ``w`` are options. Conservative flux form on cell
faces, explicit Euler (stable for dt < dx^2 / (4 max kappa)).
"""

from __future__ import annotations

import math as pymath

import torch
from phi import math
from phi.field import Field
from phi.geom import Box
from phi.math import extrapolation
from phiml.math import spatial

from hyco.errors import ConfigError
from hyco.physics.base import Problem, register_problem
from hyco.physics.convert import centered_to_tensor, tensor_to_centered


@register_problem
class Heat(Problem):
    name = "heat"
    parameters = {"amplitudes": None}
    option_defaults = {
        "kappa0": 0.005,
        "centres": [[0.25, 0.3], [0.7, 0.3], [0.45, 0.75]],
        "width": 0.12,
        "modes": 3,
    }
    ranks = (2,)
    periodic = True

    def setup(self) -> None:
        centres = [list(c) for c in self.options["centres"]]
        if len(centres) != len(self.labels) or any(len(c) != 2 for c in centres):
            raise ConfigError(
                f"model.physical.options.centres has {len(centres)} entries, but needs one [x, y] "
                f"pair per amplitude ({len(self.labels)})"
            )
        self.bounds = Box(x=1, y=1)
        ny, nx = self.array_shape
        ys, xs = torch.meshgrid(
            (torch.arange(ny) + 0.5) / ny, (torch.arange(nx) + 0.5) / nx, indexing="ij"
        )
        width = float(self.options["width"])
        bumps = []
        for cx, cy in centres:
            # periodic distance so the bumps respect the domain
            dx = torch.remainder(xs - cx + 0.5, 1.0) - 0.5
            dy = torch.remainder(ys - cy + 0.5, 1.0) - 0.5
            bumps.append(torch.exp(-(dx**2 + dy**2) / (2 * width**2)))
        self.bumps = torch.stack(bumps).float()  # [n_bumps, Y, X]
        self.max_stable_kappa = (1.0 / max(self.resolution)) ** 2 / (4 * self.cfg.dt)

    @property
    def channels(self) -> tuple[str, ...]:
        return ("T",)

    @property
    def array_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.resolution))

    def diffusivity(self, theta: torch.Tensor) -> torch.Tensor:
        """kappa on cell centres, ``[Y, X]``."""
        amps = theta.to(self.bumps.dtype).reshape(-1, 1, 1)
        return float(self.options["kappa0"]) + (amps * self.bumps.to(theta.device)).sum(0)

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

    def step(self, state: Field, theta: torch.Tensor) -> Field:
        kappa = math.tensor(self.diffusivity(theta).T, spatial("x,y"))
        temp = state.values
        rate = 0
        for axis, dx in zip(("x", "y"), (1 / self.resolution[0], 1 / self.resolution[1])):
            here, ahead = math.shift(temp, (0, 1), dims=axis, padding=extrapolation.PERIODIC, stack_dim=None)
            k_here, k_ahead = math.shift(kappa, (0, 1), dims=axis, padding=extrapolation.PERIODIC, stack_dim=None)
            flux = 0.5 * (k_here + k_ahead) * (ahead - here) / dx  # on the face between i and i+1
            behind, flux_here = math.shift(flux, (-1, 0), dims=axis, padding=extrapolation.PERIODIC, stack_dim=None)
            rate = rate + (flux_here - behind) / dx
        return state.with_values(temp + self.cfg.dt * rate)
