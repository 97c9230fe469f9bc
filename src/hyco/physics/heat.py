"""2D heat equation with a spatially varying diffusivity on a square of side ``length``.

kappa(x) = kappa0 + sum_i a_i exp(-|x - c_i|^2 / (2 w^2)); the bump amplitudes ``amplitudes``
are learnable; the centres ``c_i`` are options, or learnable too with ``learn_centres: true``
(then ``params.centres`` holds x0, y0, x1, y1, ...). The width ``w`` is an option. Coordinates
run from the domain's corner, 0 to ``length`` (centres, width), so every parameter stays > 0.

Options (defaults: the project's periodic unit-square case):
* ``form``: ``divergence`` (T_t = div(kappa grad T), conservative flux form on cell faces) or
  ``laplacian`` (T_t = kappa Laplace(T), the HYCO authors' heat model; the 5-point Laplacian);
* ``boundary``: ``periodic`` or ``dirichlet`` (T = 0 on the boundary: on this cell-centred grid
  the ghost cell holds minus its neighbour, so the boundary face is 0 to second order). With
  ``dirichlet`` the initial states are Gaussian blobs of either sign (the authors' kind of start)
  tapered by sin(pi x / L) sin(pi y / L), so they are 0 on the boundary too.

Explicit Euler (stable for dt < dx^2 / (4 max kappa)); a rollout takes more steps per frame where
theta needs them (:meth:`Heat.stable_substeps`).
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
        "length": 1.0,
        "boundary": "periodic",
        "form": "divergence",
    }
    ranks = (2,)
    periodic = True  # per instance: False with boundary dirichlet (setup)
    bounds_rule = ("amplitudes where at most 16x the configured substeps keep the explicit scheme stable, "
                   "centres in (0, length]")
    BOUNDARIES = ("periodic", "dirichlet")
    FORMS = ("divergence", "laplacian")

    @classmethod
    def example_config(cls) -> PhysicalModelConfig:
        return PhysicalModelConfig(name="heat", resolution=[16, 12], dt=0.002, substeps=5,
                                   params={"amplitudes": ParameterSpec(truth=[0.02, 0.015, 0.01], guess=[0.06, 0.045, 0.03])})

    def parameter_sizes(self) -> dict[str, int | None]:
        if self.options["learn_centres"]:
            return {"amplitudes": None, "centres": None}
        return {"amplitudes": None}

    def setup(self) -> None:
        for key, allowed in (("boundary", self.BOUNDARIES), ("form", self.FORMS)):
            if self.options[key] not in allowed:
                raise ConfigError(f"model.physical.options.{key} is {self.options[key]!r}, but must be one of {list(allowed)}")
        self.length = float(self.options["length"])
        if not self.length > 0:
            raise ConfigError(f"model.physical.options.length is {self.options['length']}, but must be > 0")
        self.periodic = self.options["boundary"] == "periodic"
        self.padding = extrapolation.PERIODIC if self.periodic else extrapolation.ANTISYMMETRIC
        self.spacing = tuple(self.length / n for n in self.resolution)  # x, y
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
        self.bounds = Box(x=self.length, y=self.length)
        ny, nx = self.array_shape
        # (i + 0.5) / n * length: bitwise the former (i + 0.5) / n on the unit square, for any n
        self.ys, self.xs = torch.meshgrid((torch.arange(ny) + 0.5) / ny * self.length,
                                          (torch.arange(nx) + 0.5) / nx * self.length, indexing="ij")

    def _inverse_dx2(self) -> float:
        """1/dx^2 + 1/dy^2 (as (n / length)^2: exactly n^2 on the unit square, as before)."""
        return sum((n / self.length) ** 2 for n in self.resolution)

    def _stable_dt(self, kappa_max: float) -> float:
        """Forward Euler, 5-point stencil: ``dt <= 1 / (2 kappa (1/dx^2 + 1/dy^2))``, 90 % margin."""
        return 0.9 / (2 * kappa_max * self._inverse_dx2())

    def parameter_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.max_substep_factor * self.cfg.substeps
        kappa_limit = 0.9 / (2 * self._inverse_dx2()) * steps / self.frame_dt
        kappa0 = float(self.options["kappa0"])
        if kappa_limit <= kappa0:
            raise ConfigError(
                f"model.physical.dt is {self.cfg.dt}: with resolution {list(self.resolution)} even kappa0 = {kappa0} "
                f"alone needs more than {steps} steps per frame to be stable; lower model.physical.dt"
            )
        amp_hi = (kappa_limit - kappa0) / self.num_bumps  # the bumps may overlap
        lo = [1e-12] * self.num_bumps + [1e-3 * self.length] * (len(self.labels) - self.num_bumps)
        hi = [amp_hi] * self.num_bumps + [self.length] * (len(self.labels) - self.num_bumps)
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
        dx = xs[None] - centres[:, 0, None, None]
        dy = ys[None] - centres[:, 1, None, None]
        if self.periodic:  # periodic distance, so a bump near an edge wraps around like the domain
            half = 0.5 * self.length
            dx = torch.remainder(dx + half, self.length) - half
            dy = torch.remainder(dy + half, self.length) - half
        width = float(self.options["width"])
        bumps = torch.exp(-(dx**2 + dy**2) / (2 * width**2))
        return float(self.options["kappa0"]) + (amps * bumps).sum(0)

    def sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Smooth random fields: periodic, random Fourier modes up to ``modes`` scaled to [0, 1];
        dirichlet, see :meth:`_sample_blobs`."""
        if not self.periodic:
            return self._sample_blobs(n, generator)
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

    def _sample_blobs(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``modes`` unit Gaussian blobs exp(-|x - p|^2 / (2 w^2)) of alternating sign (+, -, +, ...),
        centres uniform in the middle two thirds of the domain, times sin(pi x / L) sin(pi y / L):
        0 on the boundary, like the solution."""
        ys, xs = self.ys.double(), self.xs.double()
        width, length = float(self.options["width"]), self.length
        temp = torch.zeros((n, *xs.shape), dtype=torch.float64)
        for k in range(int(self.options["modes"])):
            centre = length / 6 + 2 * length / 3 * torch.rand((n, 2, 1, 1), generator=generator, dtype=torch.float64)
            r2 = (xs - centre[:, 0]) ** 2 + (ys - centre[:, 1]) ** 2
            temp += (-1) ** k * torch.exp(-r2 / (2 * width**2))
        taper = torch.sin(pymath.pi * xs / length) * torch.sin(pymath.pi * ys / length)
        return (temp * taper).float()[:, None]

    def to_state(self, array: torch.Tensor) -> Field:
        return tensor_to_centered(array, self.bounds, self.padding, vector=False)

    def to_array(self, state: Field) -> torch.Tensor:
        return centered_to_tensor(state)

    def step(self, state: Field, theta: torch.Tensor, dt: float) -> Field:
        kappa = math.tensor(self.diffusivity(theta).T, spatial("x,y"))
        temp = state.values
        rate = 0
        if self.options["form"] == "laplacian":  # kappa * (T_i-1 - 2 T_i + T_i+1) / dx^2 per axis
            for axis, dx in zip(("x", "y"), self.spacing):
                behind, ahead = math.shift(temp, (-1, 1), dims=axis, padding=self.padding, stack_dim=None)
                rate = rate + (behind - 2 * temp + ahead) / dx**2
            return state.with_values(temp + dt * kappa * rate)
        for axis, dx in zip(("x", "y"), self.spacing):
            if self.periodic:  # each face flux computed once and shifted (the original periodic scheme)
                here, ahead = math.shift(temp, (0, 1), dims=axis, padding=self.padding, stack_dim=None)
                k_here, k_ahead = math.shift(kappa, (0, 1), dims=axis, padding=self.padding, stack_dim=None)
                flux = 0.5 * (k_here + k_ahead) * (ahead - here) / dx  # on the face between i and i+1
                behind, flux_here = math.shift(flux, (-1, 0), dims=axis, padding=self.padding, stack_dim=None)
                rate = rate + (flux_here - behind) / dx
                continue
            # dirichlet: both faces of each cell from its neighbours; the ghost T (antisymmetric) puts 0
            # on the boundary face, the ghost kappa repeats the last cell's (no kappa outside is needed)
            behind, ahead = math.shift(temp, (-1, 1), dims=axis, padding=self.padding, stack_dim=None)
            k_behind, k_ahead = math.shift(kappa, (-1, 1), dims=axis, padding=extrapolation.ZERO_GRADIENT, stack_dim=None)
            rate = rate + (0.5 * (kappa + k_ahead) * (ahead - temp) - 0.5 * (k_behind + kappa) * (temp - behind)) / dx**2
        return state.with_values(temp + dt * rate)
