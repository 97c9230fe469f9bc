"""The Ray room of hyco_ray: the searchers, the trainable, the Ray session and its leftovers, the
sweep, confirmation and retraining (docs/architecture.md, "Layers")."""
