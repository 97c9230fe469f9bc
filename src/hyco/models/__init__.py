"""Synthetic (neural) models that predict the next state of a field."""

from __future__ import annotations

from hyco.models.unet import SYNTHETIC_MODELS, UNet, available_models, make_model

__all__ = ["SYNTHETIC_MODELS", "UNet", "available_models", "make_model"]
