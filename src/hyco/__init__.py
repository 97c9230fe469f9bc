"""hyco: hybrid-cooperative (HYCO) learning of a PhiFlow physical model and a PyTorch network.

The library never imports Ray; see ``hyco_ray`` for the sweep layer.
"""

from __future__ import annotations

__version__ = "0.1.0"
