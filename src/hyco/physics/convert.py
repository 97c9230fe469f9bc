"""Field <-> tensor conversion between PhiFlow grids and torch arrays.

Torch layout is channels-first with spatial axes in array order: ``[B, C, X]`` in 1D and
``[B, C, Y, X]`` in 2D (row = y). Channels are the field's vector components in the order
``x, y`` (one channel for a scalar field). A staggered 2D velocity with ``x`` faces of shape
``(Y, X+1)`` and ``y`` faces of shape ``(Y+1, X)`` is stored zero-padded as ``[B, 2, Y+1, X+1]``
(the lossless layout; periodic staggered grids need no padding and use ``[B, 2, Y, X]``).

The batch dimension of the grids is always ``BATCH`` (``b``); conversion is a view where
PhiML allows it (``native`` with an explicit order), never an implicit transpose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from phi import math
from phi.field import CenteredGrid, Field, StaggeredGrid
from phi.geom import Box
from phiml.math import batch, channel, dual, spatial

BATCH = "b"
AXES = ("x", "y", "z")


def spatial_names(ndim: int) -> tuple[str, ...]:
    """PhiFlow dimension names of a grid with ``ndim`` axes, e.g. ``('x', 'y')``."""
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim is {ndim}, but must be 1, 2 or 3")
    return AXES[:ndim]


def _array_order(ndim: int) -> str:
    """Spatial dims in torch array order: the last array axis is x."""
    return ",".join(reversed(spatial_names(ndim)))


def centered_to_tensor(grid: Field) -> torch.Tensor:
    """A centred grid with batch dim ``b`` -> ``[B, C, *spatial]`` (C = 1 for scalars)."""
    ndim = grid.spatial_rank
    values = grid.values
    if BATCH not in values.shape:
        values = math.expand(values, batch(**{BATCH: 1}))
    if "vector" not in values.shape:
        values = math.expand(values, channel(vector="value"))
    return values.native(f"{BATCH},vector,{_array_order(ndim)}")


def _phiflow_order(array: torch.Tensor, leading: int) -> torch.Tensor:
    """View of ``array`` with its spatial axes (after ``leading`` axes) reordered to x, y, z.

    PhiFlow requires spatial dims declared in x, y order; declaring ``spatial('y,x')`` breaks
    shape merging in its operators. A permute is a view, so nothing is copied.
    """
    ndim = array.dim() - leading
    return array.permute(*range(leading), *reversed(range(leading, leading + ndim)))


def tensor_to_centered(
    array: torch.Tensor, bounds: Box, boundary, vector: bool
) -> Field:
    """``[B, C, *spatial]`` -> centred grid; ``vector`` makes C the field's components."""
    ndim = array.dim() - 2
    names = spatial_names(ndim)
    dims = [batch(BATCH)]
    if vector:
        if array.shape[1] != ndim:
            raise ValueError(f"a {ndim}D vector field needs {ndim} channels, got {array.shape[1]}")
        dims.append(channel(vector=",".join(names)))
        values = math.tensor(_phiflow_order(array, 2), *dims, spatial(*names))
    else:
        if array.shape[1] != 1:
            raise ValueError(f"a scalar field needs 1 channel, got {array.shape[1]}")
        values = math.tensor(_phiflow_order(array[:, 0], 1), *dims, spatial(*names))
    return CenteredGrid(values, boundary, bounds)


def staggered_to_tensor(grid: Field) -> torch.Tensor:
    """A 2D staggered grid -> ``[B, 2, Y', X']`` with face arrays zero-padded to a common shape."""
    if grid.spatial_rank != 2:
        raise ValueError(f"staggered conversion supports 2D grids, got {grid.spatial_rank}D")
    comps = []
    for name in ("x", "y"):
        comp = grid.values[{"~vector": name}]
        if BATCH not in comp.shape:
            comp = math.expand(comp, batch(**{BATCH: 1}))
        comps.append(comp.native(f"{BATCH},y,x"))
    height = max(c.shape[1] for c in comps)
    width = max(c.shape[2] for c in comps)
    padded = [
        torch.nn.functional.pad(c, (0, width - c.shape[2], 0, height - c.shape[1]))
        for c in comps
    ]
    return torch.stack(padded, dim=1)


def staggered_face_shapes(resolution: Sequence[int], boundary) -> dict[str, tuple[int, int]]:
    """Array shape ``(rows, cols)`` of each face component for a 2D grid of ``resolution`` (x, y)."""
    probe = StaggeredGrid(0, boundary, Box(x=1, y=1), x=resolution[0], y=resolution[1])
    shapes = {}
    for name in ("x", "y"):
        comp = probe.values[{"~vector": name}]
        shapes[name] = (comp.shape.get_size("y"), comp.shape.get_size("x"))
    return shapes


def tensor_to_staggered(
    array: torch.Tensor, bounds: Box, boundary, face_shapes: dict[str, tuple[int, int]]
) -> Field:
    """``[B, 2, Y', X']`` (padded layout) -> staggered grid; ``face_shapes`` from `staggered_face_shapes`."""
    comps = []
    for index, name in enumerate(("x", "y")):
        rows, cols = face_shapes[name]
        comps.append(math.tensor(_phiflow_order(array[:, index, :rows, :cols], 1), batch(BATCH), spatial("x,y")))
    values = math.stack(comps, dual(vector="x,y"))
    return StaggeredGrid(values, boundary, bounds)
