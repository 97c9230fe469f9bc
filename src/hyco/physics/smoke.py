"""2D buoyant incompressible smoke: a density carried by a staggered velocity, open boundaries.

rho_t + v . grad rho = 0;  v_t + (v . grad) v = -grad p + b * rho * e_y;  div v = 0.
MacCormack for the density, semi-Lagrangian for the velocity, then a pressure projection
(``fluid.make_incompressible``). The boundary is open (zero-gradient velocity), which keeps the
pressure solve on torch CG (a closed box sends it to scipy on the CPU and fails in float32).
Learnable: the buoyancy factor ``buoyancy``. The state array is ``[B, 3, Y+1, X+1]``: density
(centred) and the two staggered velocity components, each zero-padded to the common shape.
"""

from __future__ import annotations

import torch
from phi import field, math
from phi.field import Field
from phi.geom import Box
from phi.math import Solve, extrapolation
from phi.physics import advect, fluid

from hyco.config.schema import ParameterSpec, PhysicalModelConfig
from hyco.physics.base import Problem
from hyco.physics.convert import (
    centered_to_tensor,
    staggered_face_shapes,
    staggered_to_tensor,
    tensor_to_centered,
    tensor_to_staggered,
)
from hyco.registry import PROBLEMS

VELOCITY_BOUNDARY = extrapolation.ZERO_GRADIENT
DENSITY_BOUNDARY = extrapolation.ZERO


@PROBLEMS.register("smoke")
class Smoke(Problem):
    parameters = {"buoyancy": 1}
    option_defaults = {"blob_radius": 0.08, "pressure_tolerance": 1e-3, "pressure_max_iterations": 300}
    ranks = (2,)
    periodic = False

    @classmethod
    def example_config(cls) -> PhysicalModelConfig:
        return PhysicalModelConfig(name="smoke", resolution=[12, 8], dt=0.05, substeps=1, jit=False,
                                   params={"buoyancy": ParameterSpec(truth=[1.0], guess=[3.0])})

    def setup(self) -> None:
        self.bounds = Box(x=1, y=1)
        self.face_shapes = staggered_face_shapes(self.resolution, VELOCITY_BOUNDARY)
        tol = float(self.options["pressure_tolerance"])
        self.pressure_solve = Solve(
            "CG", rel_tol=tol, abs_tol=tol, max_iterations=int(self.options["pressure_max_iterations"])
        )

    @property
    def channels(self) -> tuple[str, ...]:
        return ("density", "v_x", "v_y")

    @property
    def array_shape(self) -> tuple[int, ...]:
        nx, ny = self.resolution
        return (ny + 1, nx + 1)

    def sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """One Gaussian blob of density at a random place in the lower half; fluid at rest."""
        nx, ny = self.resolution
        ys, xs = torch.meshgrid(
            (torch.arange(ny) + 0.5) / ny, (torch.arange(nx) + 0.5) / nx, indexing="ij"
        )
        centre = torch.rand((n, 2), generator=generator) * torch.tensor([0.5, 0.2]) + torch.tensor([0.25, 0.15])
        radius = float(self.options["blob_radius"])
        dist2 = (xs[None] - centre[:, 0, None, None]) ** 2 + (ys[None] - centre[:, 1, None, None]) ** 2
        state = torch.zeros((n, 3, *self.array_shape))
        state[:, 0, :ny, :nx] = torch.exp(-dist2 / (2 * radius**2))
        return state

    def restrict(self, fine: torch.Tensor, factor: int) -> torch.Tensor:
        """Density: cell averages. Each staggered velocity component lives on faces; a coarse face
        is ``factor`` fine faces side by side, so it takes their mean (the flux through it)."""
        nx, ny = self.resolution
        out = torch.zeros((fine.shape[0], 3, *self.array_shape), dtype=fine.dtype, device=fine.device)
        out[:, 0, :ny, :nx] = torch.nn.functional.avg_pool2d(fine[:, :1, : ny * factor, : nx * factor], factor)[:, 0]
        rows, cols = self.face_shapes["x"]  # (ny, nx + 1): x-faces
        vx = fine[:, 1, : rows * factor, : (cols - 1) * factor + 1 : factor]
        out[:, 1, :rows, :cols] = vx.unflatten(1, (rows, factor)).mean(2)
        rows, cols = self.face_shapes["y"]  # (ny + 1, nx): y-faces
        vy = fine[:, 2, : (rows - 1) * factor + 1 : factor, : cols * factor]
        out[:, 2, :rows, :cols] = vy.unflatten(2, (cols, factor)).mean(3)
        return out

    def to_state(self, array: torch.Tensor) -> tuple[Field, Field]:
        nx, ny = self.resolution
        density = tensor_to_centered(array[:, :1, :ny, :nx], self.bounds, DENSITY_BOUNDARY, vector=False)
        velocity = tensor_to_staggered(array[:, 1:], self.bounds, VELOCITY_BOUNDARY, self.face_shapes)
        return density, velocity

    def to_array(self, state: tuple[Field, Field]) -> torch.Tensor:
        density, velocity = state
        rho = centered_to_tensor(density)
        vel = staggered_to_tensor(velocity)
        rho = torch.nn.functional.pad(rho, (0, vel.shape[-1] - rho.shape[-1], 0, vel.shape[-2] - rho.shape[-2]))
        return torch.cat([rho, vel], dim=1)

    def step(self, state: tuple[Field, Field], theta: torch.Tensor, dt: float) -> tuple[Field, Field]:
        density, velocity = state
        buoyancy = math.wrap(theta[0])
        density = advect.mac_cormack(density, velocity, dt)
        force = field.resample(density * math.vec(x=0, y=1), to=velocity) * buoyancy
        velocity = advect.semi_lagrangian(velocity, velocity, dt) + dt * force
        velocity, _ = fluid.make_incompressible(velocity, (), self.pressure_solve)
        return density, velocity
