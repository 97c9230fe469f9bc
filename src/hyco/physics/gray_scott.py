"""Gray–Scott reaction–diffusion on a periodic square, with learnable diffusivities (Du, Dv).

    u_t = Du lap(u) - u v^2 + F (1 - u)
    v_t = Dv lap(v) + u v^2 - (F + k) v

The HYCO authors' anchor case (arXiv 2509.14123): truth (Du, Dv) = (0.20, 0.08), first guess
(0.10, 0.05). Feed ``F`` and kill ``k`` are options (0.04, 0.06: spots that spread into a
labyrinth). The square has side ``domain_size`` (default 32, so dx = 1 on a 32 x 32 grid).
Laplacian: PhiFlow's ``diffuse.differential`` (5-point, periodic); explicit Euler in time, stable
for dt <= dx^2 / (4 max D); a rollout takes more steps per frame where theta needs them.
Initial states: u = 1, v = 0 with a few random square seeds (u = 1/2, v = 1/4) plus noise.
The state is ``[B, 2, Y, X]`` (channels u, v); inside ``step`` it is a pair of centred grids.
"""

from __future__ import annotations

import torch
from phi import math
from phi.field import Field
from phi.geom import Box
from phi.math import extrapolation
from phi.physics import diffuse

from hyco.config.schema import ParameterSpec, PhysicalModelConfig
from hyco.physics.base import Problem
from hyco.physics.convert import centered_to_tensor, tensor_to_centered
from hyco.registry import PROBLEMS


def reaction(u: Field, v: Field, feed: float, kill: float) -> tuple[Field, Field]:
    """Reaction rates ``(-u v^2 + F (1 - u), u v^2 - (F + k) v)``."""
    uvv = u * v**2
    return -uvv + feed * (1 - u), uvv - (feed + kill) * v


def diffusion(u: Field, v: Field, du: math.Tensor, dv: math.Tensor) -> tuple[Field, Field]:
    """Diffusion rates ``(Du lap(u), Dv lap(v))`` with the grids' own spacing and boundary."""
    return diffuse.differential(u, du), diffuse.differential(v, dv)


@PROBLEMS.register("gray_scott")
class GrayScott(Problem):
    parameters = {"Du": 1, "Dv": 1}
    option_defaults = {"feed": 0.04, "kill": 0.06, "domain_size": 32.0, "seeds": 3, "seed_size": 0.2, "noise": 0.02}
    ranks = (2,)
    periodic = True
    bounds_rule = "guess / 1000 up to where at most 16x the configured substeps keep the explicit scheme stable"

    @classmethod
    def example_config(cls) -> PhysicalModelConfig:
        return PhysicalModelConfig(
            name="gray_scott", resolution=[16, 16], dt=1.0, substeps=2, options={"domain_size": 16.0},
            params={"Du": ParameterSpec(truth=[0.2], guess=[0.1]), "Dv": ParameterSpec(truth=[0.08], guess=[0.05])},
        )

    def setup(self) -> None:
        size = float(self.options["domain_size"])
        self.bounds = Box(x=size, y=size)
        self.dx = size / max(self.resolution)

    def _stable_dt(self, diffusivity: float) -> float:
        """Forward Euler, 5-point Laplacian in 2D: ``dt <= dx^2 / (4 D)``, 90 % margin."""
        return 0.9 * self.dx**2 / (4 * diffusivity)

    def parameter_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.max_substep_factor * self.cfg.substeps
        hi = 0.9 * self.dx**2 / 4 * steps / self.frame_dt
        return self.guess / 1000, torch.full_like(self.guess, hi)

    def stable_substeps(self, initial: torch.Tensor, theta: torch.Tensor) -> int:
        return self._substeps_within_limit(self.frame_dt / self._stable_dt(float(theta.max())))

    @property
    def channels(self) -> tuple[str, ...]:
        return ("u", "v")

    @property
    def array_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.resolution))

    def sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """u = 1, v = 0, ``seeds`` squares (side ``seed_size`` of the domain, wrapping around) with
        u = 1/2, v = 1/4, plus Gaussian noise of std ``noise`` on both."""
        ny, nx = self.array_shape
        state = torch.zeros((n, 2, ny, nx), dtype=torch.float64)
        state[:, 0] = 1.0
        side_y, side_x = (max(1, round(float(self.options["seed_size"]) * m)) for m in (ny, nx))
        for i in range(n):
            for _ in range(int(self.options["seeds"])):
                y0 = int(torch.randint(ny, (1,), generator=generator))
                x0 = int(torch.randint(nx, (1,), generator=generator))
                rows = [(y0 + j) % ny for j in range(side_y)]
                cols = [(x0 + j) % nx for j in range(side_x)]
                state[i, 0, torch.tensor(rows)[:, None], torch.tensor(cols)[None]] = 0.5
                state[i, 1, torch.tensor(rows)[:, None], torch.tensor(cols)[None]] = 0.25
        state += float(self.options["noise"]) * torch.randn(state.shape, generator=generator, dtype=torch.float64)
        return state.float()

    def to_state(self, array: torch.Tensor) -> tuple[Field, Field]:
        return tuple(
            tensor_to_centered(array[:, c : c + 1], self.bounds, extrapolation.PERIODIC, vector=False) for c in (0, 1)
        )

    def to_array(self, state: tuple[Field, Field]) -> torch.Tensor:
        return torch.cat([centered_to_tensor(grid) for grid in state], dim=1)

    def step(self, state: tuple[Field, Field], theta: torch.Tensor, dt: float) -> tuple[Field, Field]:
        u, v = state
        du_diff, dv_diff = diffusion(u, v, math.wrap(theta[0]), math.wrap(theta[1]))
        du_react, dv_react = reaction(u, v, float(self.options["feed"]), float(self.options["kill"]))
        return u + dt * (du_diff + du_react), v + dt * (dv_diff + dv_react)
