"""Tests of the synthetic U-Net and the model registry."""

from __future__ import annotations

import pytest
import torch

from hyco.errors import ConfigError
from hyco.models import UNet, available_models, make_model


@pytest.mark.parametrize(
    ("shape", "periodic"),
    [
        ((2, 1, 128), True),
        ((2, 2, 32, 32), True),
        ((2, 3, 33, 33), True),
        ((1, 1, 17, 9), True),
        ((2, 3, 33, 33), False),
        ((1, 1, 17, 9), False),
        ((1, 1, 3), True),  # smaller than 2**depth: padding must still work
        ((1, 1, 3), False),
    ],
)
def test_output_shape_equals_input_shape(shape: tuple[int, ...], periodic: bool) -> None:
    torch.manual_seed(0)
    model = UNet(ndim=len(shape) - 2, channels=shape[1], base_channels=4, periodic=periodic)
    x = torch.randn(shape)
    y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_depths_keep_shape(depth: int) -> None:
    model = UNet(ndim=2, channels=2, base_channels=4, depth=depth)
    x = torch.randn(1, 2, 20, 12)
    assert model(x).shape == x.shape


@pytest.mark.parametrize("shape", [(2, 1, 128), (2, 3, 33, 33)])
def test_untrained_residual_model_is_identity(shape: tuple[int, ...]) -> None:
    model = UNet(ndim=len(shape) - 2, channels=shape[1], base_channels=4)
    x = torch.randn(shape)
    assert torch.equal(model(x), x)


def test_non_residual_model_is_not_identity() -> None:
    torch.manual_seed(0)
    model = UNet(ndim=1, channels=1, base_channels=4, residual=False)
    x = torch.randn(2, 1, 32)
    assert not torch.allclose(model(x), x)


def _randomise(model: torch.nn.Module) -> None:
    """Give every parameter (including the zero-initialised head) non-trivial values."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)


@pytest.mark.parametrize(
    ("shape", "shift_axis"), [((2, 1, 64), -1), ((1, 2, 32, 16), -1), ((1, 2, 32, 16), -2)]
)
def test_periodic_model_is_translation_equivariant(shape: tuple[int, ...], shift_axis: int) -> None:
    torch.manual_seed(1)
    depth = 2
    model = UNet(ndim=len(shape) - 2, channels=shape[1], base_channels=4, depth=depth)
    _randomise(model)
    x = torch.randn(shape)
    shift = 3 * 2**depth
    y_of_rolled = model(torch.roll(x, shift, dims=shift_axis))
    rolled_y = torch.roll(model(x), shift, dims=shift_axis)
    assert not torch.allclose(model(x), x, atol=1e-3)  # the check is not vacuous
    torch.testing.assert_close(y_of_rolled, rolled_y, atol=1e-5, rtol=0)


def test_non_periodic_model_is_not_translation_equivariant() -> None:
    # Guards the equivariance test: zero padding must break it, else it checks nothing.
    torch.manual_seed(1)
    model = UNet(ndim=1, channels=1, base_channels=4, depth=2, periodic=False)
    _randomise(model)
    x = torch.randn(2, 1, 64)
    y_of_rolled = model(torch.roll(x, 8, dims=-1))
    assert not torch.allclose(y_of_rolled, torch.roll(model(x), 8, dims=-1), atol=1e-5)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = UNet(ndim=2, channels=1, base_channels=4, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(2, 1, 16, 16)
    target = 0.5 * x

    def step() -> None:
        opt.zero_grad()
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()
        opt.step()

    step()  # the zero head only receives gradient at first; one step makes it nonzero
    assert model.head.weight.abs().sum() > 0
    opt.zero_grad()
    torch.mean((model(x) - target) ** 2).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_same_seed_gives_same_weights_and_outputs() -> None:
    def build() -> tuple[UNet, torch.Tensor]:
        torch.manual_seed(123)
        model = UNet(ndim=2, channels=2, base_channels=4, residual=False)
        return model, model(torch.randn(1, 2, 17, 9))

    (m1, y1), (m2, y2) = build(), build()
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    assert torch.equal(y1, y2)


def test_one_dimensional_model_learns_a_shift() -> None:
    torch.manual_seed(0)
    model = UNet(ndim=1, channels=1, base_channels=8, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(16, 1, 32)
    target = torch.roll(x, 1, dims=-1)
    with torch.no_grad():
        initial = torch.mean((model(x) - target) ** 2).item()
    for _ in range(200):
        opt.zero_grad()
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = torch.mean((model(x) - target) ** 2).item()
    assert final < initial / 5, (initial, final)


@pytest.mark.parametrize(
    ("kwargs", "key", "bad"),
    [
        ({"ndim": 3, "channels": 1}, "ndim", "3"),
        ({"ndim": 0, "channels": 1}, "ndim", "0"),
        ({"ndim": 1, "channels": 0}, "channels", "0"),
        ({"ndim": 1, "channels": 1, "base_channels": 0}, "model.synthetic.options.base_channels", "0"),
        ({"ndim": 1, "channels": 1, "depth": -1}, "model.synthetic.options.depth", "-1"),
        ({"ndim": 1, "channels": 1, "depth": 1.5}, "model.synthetic.options.depth", "1.5"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], key: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        UNet(**kwargs)
    assert f" is {bad}, but must be" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_forward_rejects_wrong_shape() -> None:
    model = UNet(ndim=2, channels=2)
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 2, 16))
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 3, 16, 16))


def test_registry_builds_unet() -> None:
    assert "unet" in available_models()
    model = make_model("unet", ndim=1, channels=2, periodic=False, base_channels=4, depth=1)
    assert isinstance(model, UNet)
    assert model.periodic is False and model.depth == 1
    x = torch.randn(1, 2, 10)
    assert torch.equal(model(x), x)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        make_model("fno", ndim=1, channels=1, periodic=True)
    message = str(info.value)
    assert "model.synthetic.name" in message
    assert "'fno'" in message
    assert "'unet'" in message
