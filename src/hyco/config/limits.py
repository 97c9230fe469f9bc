"""Size limits: estimate a run's memory (and roughly its time) from the config, before any work.

A resolution of 10^8 or 10^5 x 10^5, ``base_channels`` of 10^5 or 10^9 simulations would
otherwise allocate for minutes before failing (or start simulating for days). The estimate is a
deliberate over-approximation from the sizes alone (bytes = 4 for float32, 8 for float64):

* data: ``num_simulations x (num_steps + 1) x C x cells x bytes``, twice (the cached array and
  the training copy);
* network: UNet parameters ``~ 2.5 x 3^ndim x sum_l (base_channels * 2^l)^2`` with Adam's
  gradient and two moments (x4), and activations ``~ 8 x base_channels * 2^l`` maps of
  ``cells / 2^(ndim*l)`` per level and sample, kept for backprop over a segment
  (``num_predict_steps x stride`` steps) of a batch, twice (data and interaction loss);
* physics: rollouts differentiated for L-BFGS keep ~8 arrays per step and sim over the whole
  trajectory (``num_steps x substeps``) of the training sims and interaction states.

What cannot fit into ``run_params.max_memory_gb`` (default: this machine's RAM) is refused with
the estimate and the limit in one :class:`ConfigError`; a big machine raises the limit.
"""

from __future__ import annotations

import math
import os

from hyco.config.schema import RunConfig
from hyco.errors import ConfigError

GB = 1e9
#: rough throughput of the CPU solvers, point-steps per second (for the time shown in messages)
POINT_STEPS_PER_S = 2e7


def machine_memory_gb() -> float:
    """Total physical memory of this machine in GB (inf where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GB
    except (ValueError, OSError, AttributeError):
        return math.inf


def estimate(cfg: RunConfig, channels: int, array_shape: tuple[int, ...]) -> dict[str, float]:
    """Bytes of each part of a run and the seconds to simulate its data (see the module doc)."""
    data, tp, net = cfg.data, cfg.trainer_params, cfg.model.synthetic
    cells, ndim = math.prod(array_shape), len(array_shape)
    nbytes = 8 if cfg.run_params.dtype == "float64" else 4
    frame = channels * cells * nbytes
    options = net.options  # the network's own options; the UNet's width and depth drive the size
    base, depth = int(options.get("base_channels", 16)), int(options.get("depth", 2))
    widths = [base * 2**level for level in range(depth + 1)]
    params = 2.5 * 3**ndim * sum(w * w for w in widths)
    per_sample = sum(8 * w * cells / 2 ** (ndim * level) for level, w in enumerate(widths)) * nbytes
    segment = tp.num_predict_steps * data.observation.stride
    batch = min(tp.synthetic.batch_size, len(tp.train_sim))
    sims = len(tp.train_sim) + tp.num_random_ics
    point_steps = data.num_simulations * data.num_steps * cfg.model.physical.substeps * cells * channels
    return {
        "data": 2 * data.num_simulations * (data.num_steps + 1) * frame,
        "network": 4 * params * nbytes,
        "activations": 2 * batch * segment * per_sample,
        "physics": 8 * sims * data.num_steps * cfg.model.physical.substeps * frame,
        "simulate_s": point_steps / POINT_STEPS_PER_S,
    }


def _fmt_time(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.2g} s"


def check_limits(cfg: RunConfig, channels: int, array_shape: tuple[int, ...]) -> None:
    """Refuse a config whose estimated memory exceeds ``run_params.max_memory_gb`` (or the RAM)."""
    limit = cfg.run_params.max_memory_gb
    if limit is not None and not limit > 0:
        raise ConfigError(f"run_params.max_memory_gb is {limit!r}, but must be > 0 (or null: this machine's RAM)")
    parts = estimate(cfg, channels, array_shape)
    simulate_s = parts.pop("simulate_s")
    total = sum(parts.values()) / GB
    limit_gb, source = (limit, "run_params.max_memory_gb") if limit is not None else (machine_memory_gb(), "this machine's RAM")
    if total <= limit_gb:
        return
    biggest = max(parts, key=parts.get)
    culprit = {"data": "data.num_simulations, data.num_steps or model.physical.resolution",
               "network": "model.synthetic.options.base_channels or depth",
               "activations": "model.synthetic.options.base_channels, model.physical.resolution or trainer_params.synthetic.batch_size",
               "physics": "model.physical.resolution, data.num_steps or trainer_params.train_sim"}[biggest]
    shown = ", ".join(f"{k} {v / GB:.3g}" for k, v in parts.items())
    raise ConfigError(
        f"this run needs about {total:.3g} GB ({shown}; simulating the data alone ~{_fmt_time(simulate_s)}), "
        f"more than the limit of {limit_gb:.3g} GB ({source}): reduce {culprit}, "
        "or on a bigger machine set run_params.max_memory_gb"
    )
