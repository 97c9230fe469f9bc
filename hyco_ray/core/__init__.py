"""The Ray-free room of hyco_ray: the sweep spec, its names and parameter and scheduler types,
the sweep directory, reports and exports. Nothing here imports Ray (docs/architecture.md, "Layers";
tests/test_hyco_ray_layers.py)."""
