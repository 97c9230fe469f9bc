"""Field <-> tensor conversion: exact round trips, no silent transposes, no scrambled batches.

Grids are deliberately non-square (x has 5 cells, y has 3) and batches hold distinct random
values, so a transposed axis or a reordered sample changes values and is caught.
"""

from __future__ import annotations

import copy

import pytest
import torch
from phi.geom import Box
from phi.math import extrapolation

from hyco.config import load_config
from hyco.physics import make_problem
from hyco.physics.convert import (
    centered_to_tensor,
    staggered_face_shapes,
    staggered_to_tensor,
    tensor_to_centered,
    tensor_to_staggered,
)

NX, NY, B = 5, 3, 3


def value(field_values, **index) -> float:
    return float(field_values[index])


def check_centered(array: torch.Tensor, bounds: Box, boundary, vector: bool) -> None:
    grid = tensor_to_centered(array, bounds, boundary, vector=vector)
    assert grid.bounds == bounds
    assert grid.extrapolation == boundary
    ndim = array.dim() - 2
    names = ("x", "y")[:ndim]
    assert tuple(grid.resolution.sizes) == tuple(reversed(array.shape[2:]))
    assert grid.resolution.names == names
    back = centered_to_tensor(grid)
    assert back.shape == array.shape
    assert torch.equal(back, array), "round trip tensor -> field -> tensor changed values"
    # element-wise: array[b, c, (row=j,) col=i] is the field's value at x index i (, y index j)
    values = grid.values
    for b in range(array.shape[0]):
        for c in range(array.shape[1]):
            comp = {"vector": names[c]} if vector else {}
            if ndim == 1:
                for i in range(array.shape[2]):
                    assert value(values, b=b, x=i, **comp) == float(array[b, c, i])
            else:
                for j in range(array.shape[2]):
                    for i in range(array.shape[3]):
                        assert value(values, b=b, x=i, y=j, **comp) == float(array[b, c, j, i])


def check_staggered(bounds: Box, boundary) -> None:
    shapes = staggered_face_shapes((NX, NY), boundary)
    rows = max(r for r, _ in shapes.values())
    cols = max(c for _, c in shapes.values())
    array = torch.randn(B, 2, rows, cols)
    for index, name in enumerate(("x", "y")):  # the zero padding outside each face array
        r, c = shapes[name]
        array[:, index, r:, :] = 0
        array[:, index, :, c:] = 0
    grid = tensor_to_staggered(array, bounds, boundary, shapes)
    assert grid.is_staggered
    assert grid.bounds == bounds
    assert grid.extrapolation == boundary
    assert tuple(grid.resolution.sizes) == (NX, NY) and grid.resolution.names == ("x", "y")
    back = staggered_to_tensor(grid)
    assert back.shape == array.shape
    assert torch.equal(back, array), f"staggered round trip changed values ({boundary})"
    for index, name in enumerate(("x", "y")):
        comp = grid.values[{"~vector": name}]
        r, c = shapes[name]
        assert (comp.shape.get_size("y"), comp.shape.get_size("x")) == (r, c)
        for b in range(B):
            for j in range(r):
                for i in range(c):
                    assert float(comp[{"b": b, "x": i, "y": j}]) == float(array[b, index, j, i])


def test_field_tensor_conversion_preserves_values():
    gen = torch.Generator().manual_seed(0)
    periodic = extrapolation.PERIODIC
    # 1D, scalar and vector (the vector has one component, x)
    box_1d = Box(x=2.0)
    check_centered(torch.randn(B, 1, NX, generator=gen), box_1d, periodic, vector=False)
    check_centered(torch.randn(B, 1, NX, generator=gen), box_1d, periodic, vector=True)
    # 2D, scalar and vector, [B, C, Y, X] with X != Y
    box_2d = Box(x=2.0, y=1.0)
    check_centered(torch.randn(B, 1, NY, NX, generator=gen), box_2d, periodic, vector=False)
    check_centered(torch.randn(B, 2, NY, NX, generator=gen), box_2d, periodic, vector=True)
    check_centered(torch.randn(B, 1, NY, NX, generator=gen), box_2d, extrapolation.ZERO, vector=False)
    check_centered(torch.randn(B, 2, NY, NX, generator=gen), box_2d, extrapolation.ZERO_GRADIENT, vector=True)
    # 2D staggered with three boundary kinds (they differ in the number of stored faces)
    for boundary in (extrapolation.ZERO_GRADIENT, extrapolation.ZERO, periodic):
        check_staggered(box_2d, boundary)


def test_staggered_face_shapes_follow_the_boundary():
    assert staggered_face_shapes((NX, NY), extrapolation.ZERO_GRADIENT) == {"x": (NY, NX + 1), "y": (NY + 1, NX)}
    assert staggered_face_shapes((NX, NY), extrapolation.ZERO) == {"x": (NY, NX - 1), "y": (NY - 1, NX)}
    assert staggered_face_shapes((NX, NY), extrapolation.PERIODIC) == {"x": (NY, NX), "y": (NY, NX)}


def test_conversion_keeps_gradients():
    array = torch.randn(B, 2, NY, NX, requires_grad=True)
    grid = tensor_to_centered(array, Box(x=2.0, y=1.0), extrapolation.PERIODIC, vector=True)
    back = centered_to_tensor(grid)
    (back * torch.arange(NX)).sum().backward()
    assert torch.equal(array.grad, torch.arange(NX).float().expand(B, 2, NY, NX))


def test_wrong_channel_count_is_rejected():
    with pytest.raises(ValueError, match="channels"):
        tensor_to_centered(torch.zeros(1, 3, NY, NX), Box(x=1, y=1), extrapolation.PERIODIC, vector=True)
    with pytest.raises(ValueError, match="channel"):
        tensor_to_centered(torch.zeros(1, 2, NY, NX), Box(x=1, y=1), extrapolation.PERIODIC, vector=False)


PROBLEMS = [
    ("burgers_physical_quick_test", []),
    ("burgers_physical_quick_test", ["model/physical=burgers_2d", "model.physical.resolution=[12,8]"]),
    ("heat_hybrid_quick_test", ["model.physical.resolution=[12,8]"]),
    ("smoke_hybrid_quick_test", ["model.physical.resolution=[12,8]"]),
    ("smoke_hybrid_quick_test", []),
]


@pytest.mark.parametrize("name, overrides", PROBLEMS, ids=["burgers1d", "burgers2d", "heat", "smoke-12x8", "smoke"])
def test_problem_state_round_trip(tmp_path, name, overrides):
    cfg = load_config(name, [f"data.cache_dir={tmp_path}", *overrides])
    problem = make_problem(cfg.model.physical)
    x = problem.sample_initial(4, torch.Generator().manual_seed(1))
    assert x.shape == (4, len(problem.channels), *problem.array_shape)
    if problem.name == "smoke":  # give the (zero) initial velocity real values on the stored faces
        for index, face in enumerate(("x", "y")):
            r, c = problem.face_shapes[face]
            x[:, 1 + index, :r, :c] = torch.randn(4, r, c, generator=torch.Generator().manual_seed(2 + index))
    back = problem.to_array(problem.to_state(x))
    assert back.dtype == x.dtype
    assert torch.equal(back, x)
    # the samples stay distinct and in order
    assert all(not torch.equal(x[i], x[i + 1]) for i in range(len(x) - 1))


@pytest.mark.parametrize("config", ["burgers_hybrid_quick_test", "heat_hybrid_quick_test", "smoke_hybrid_quick_test"])
def test_traced_rollout_matches_eager(config):
    """model.physical.jit changes speed, not numbers: same frames, and same gradients where jit is the default."""

    cfg = load_config(config)
    results = {}
    for jit in (False, True):
        physical = copy.deepcopy(cfg.model.physical)
        physical.jit = jit
        problem = make_problem(physical)
        x0 = problem.sample_initial(3, torch.Generator().manual_seed(0))
        theta = problem.guess.float().clone().requires_grad_(True)
        frames = problem.rollout(x0, theta, 3)
        (frames**2).sum().backward()
        results[jit] = (frames.detach(), theta.grad)
    assert torch.equal(results[False][0], results[True][0])
    if cfg.model.physical.jit:
        torch.testing.assert_close(results[False][1], results[True][1])
