"""Synthetic (neural) models that predict the next state of a field, found by name in
:data:`hyco.registry.MODELS`."""

from __future__ import annotations

from hyco.models import resnet, unet  # noqa: F401  (register the models)
from hyco.models.resnet import ResNet
from hyco.models.unet import UNet
from hyco.registry import MODELS


def available_models() -> list[str]:
    """Names accepted by :func:`make_model` (``model.synthetic.name``)."""
    return MODELS.names()


def make_model(name: str, ndim: int, channels: int, periodic: bool, **options: object):
    """Build the synthetic model ``name``; ``ndim``, ``channels`` and ``periodic`` come from the
    physical problem, ``options`` from ``model.synthetic.options`` (the model checks them)."""
    return MODELS.build(name, ndim=ndim, channels=channels, periodic=periodic, **options)


__all__ = ["MODELS", "ResNet", "UNet", "available_models", "make_model"]
