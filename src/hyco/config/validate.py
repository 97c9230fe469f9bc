"""Range and consistency checks on a typed config, run before any simulation starts.

The config layer checks the structure and ranges it owns, then asks the registries
(:mod:`hyco.registry`) to build the named components: each component checks its own options.
Nothing here imports a layer above the config.
"""

from __future__ import annotations

import math

import torch

from hyco.config.limits import check_limits
from hyco.config.schedule import check_schedule
from hyco.config.schema import RunConfig
from hyco.errors import ConfigError
from hyco.registry import METRICS, MODELS, OPTIMIZERS, PROBLEMS, THETA_OPTIMIZERS, TRAINERS

#: problems whose data may carry the missing loss term ``data.simulation.decay`` (linear PDEs,
#: where it is exact as a factor exp(-r t): hyco.data.generate.with_decay)
DECAY_PROBLEMS = ("heat",)

MASKS = ("full", "region", "random", "sensors")
MODES = ("train", "evaluate")
INTERACTION_REGIONS = ("unobserved", "all")
#: val metrics a run may keep its best epoch's state by (``trainer_params.keep_best``)
BEST_METRICS = ("val_loss", "val_loss_synthetic", "val_loss_physical")
#: every metric a trainer reports per epoch that a sweep may optimise (``hyco_ray.core.space.METRICS``);
#: not ``hyco.registry.METRICS``, the functions that compare two rollouts (``trainer_params.metric``)
OBJECTIVE_METRICS = (*BEST_METRICS, "train_loss")
#: reported but never an objective: it needs the true θ*, which a user does not have (README, metrics table)
NOT_OBJECTIVES = ("param_error",)


def _require(ok: bool, key: str, value: object, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key} is {value!r}, but {rule}")


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _box_ok(box: object, ndim: int) -> bool:
    """[[lo, hi], ...] with one pair of fractions per axis, lo < hi."""
    try:
        pairs = [list(axis) for axis in box]  # type: ignore[union-attr]
    except TypeError:
        return False
    if isinstance(box, str) or len(pairs) != ndim:
        return False
    return all(len(p) == 2 and all(_finite(v) for v in p) and 0 <= p[0] < p[1] <= 1 for p in pairs)


def _sensor_path_ok(path: object, ndim: int) -> bool:
    """Waypoints [t, x(, y)] of fractions in [0, 1], t strictly increasing."""
    try:
        points = [list(p) for p in path]  # type: ignore[union-attr]
    except TypeError:
        return False
    if not points or any(len(p) != ndim + 1 or not all(_finite(v) and 0 <= v <= 1 for v in p) for p in points):
        return False
    return all(a[0] < b[0] for a, b in zip(points, points[1:]))


def validate(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` on the first bad value; the message names key, value and rule."""
    rp, data, tp = cfg.run_params, cfg.data, cfg.trainer_params
    obs = data.observation
    _require(rp.device in ("cpu", "cuda", "auto"), "run_params.device", rp.device, "must be cpu, cuda or auto")
    _require(rp.num_threads >= 1, "run_params.num_threads", rp.num_threads, "must be >= 1")
    _require(rp.dtype in ("float32", "float64"), "run_params.dtype", rp.dtype, "must be float32 or float64")
    _require(set(rp.mode) <= set(MODES) and rp.mode, "run_params.mode", rp.mode, f"must be a non-empty subset of {list(MODES)}")
    TRAINERS.get(rp.model_type)

    _require(data.num_simulations >= 1, "data.num_simulations", data.num_simulations, "must be >= 1")
    _require(data.num_steps >= 1, "data.num_steps", data.num_steps, "must be >= 1")
    _require(1 <= data.simulation.refine <= 16, "data.simulation.refine", data.simulation.refine,
             "must be an integer from 1 (P's own grid) to 16")
    decay = data.simulation.decay
    _require(_finite(decay) and decay >= 0, "data.simulation.decay", decay, "must be >= 0 (a loss rate, 1 / time)")
    _require(decay == 0 or cfg.model.physical.name in DECAY_PROBLEMS, "data.simulation.decay", decay,
             f"must be 0 for {cfg.model.physical.name}: the missing term is defined for {list(DECAY_PROBLEMS)} only")
    _require(obs.mask in MASKS, "data.observation.mask", obs.mask, f"must be one of {list(MASKS)}")
    _require(_finite(obs.fraction) and 0 < obs.fraction <= 1, "data.observation.fraction", obs.fraction, "must be in (0, 1]")
    _require(_finite(obs.noise) and obs.noise >= 0, "data.observation.noise", obs.noise, "must be >= 0 (relative to max|u|)")
    _require(obs.stride >= 1, "data.observation.stride", obs.stride, "must be >= 1")
    ndim = len(cfg.model.physical.resolution)
    if obs.mask == "region":
        ok = len(obs.region) == ndim and all(
            len(r) == 2 and 0 <= r[0] < r[1] <= 1 for r in obs.region
        )
        _require(ok, "data.observation.region", obs.region,
                 f"must hold one [lo, hi] pair per axis ({ndim}, in x, y order) with 0 <= lo < hi <= 1")

    if obs.mask == "sensors":
        _require(len(obs.sensors) >= 1, "data.observation.sensors", obs.sensors,
                 "must list at least one sensor path when data.observation.mask is sensors")
        for i, path in enumerate(obs.sensors):
            _require(_sensor_path_ok(path, ndim), f"data.observation.sensors[{i}]", path,
                     f"must be waypoints [t, {', '.join('xy'[:ndim])}] (fractions in [0, 1]) with t increasing")

    sims = {"train_sim": tp.train_sim, "val_sim": tp.val_sim, "test_sim": tp.test_sim}
    for key, ids in sims.items():
        _require(all(0 <= i < data.num_simulations for i in ids), f"trainer_params.{key}", ids,
                 f"must index simulations 0..{data.num_simulations - 1} (data.num_simulations)")
        _require(len(set(ids)) == len(ids), f"trainer_params.{key}", ids, "must not repeat a simulation")
    _require(len(tp.train_sim) >= 1, "trainer_params.train_sim", tp.train_sim, "must name at least one simulation")
    _require(len(tp.val_sim) >= 1, "trainer_params.val_sim", tp.val_sim, "must name at least one simulation")
    for a, b in (("train_sim", "val_sim"), ("train_sim", "test_sim"), ("val_sim", "test_sim")):
        shared = set(sims[a]) & set(sims[b])
        _require(not shared, f"trainer_params.{b}", sims[b], f"must not share simulations {sorted(shared)} with {a}")
    if obs.num_sims is not None:
        _require(1 <= obs.num_sims <= len(tp.train_sim), "data.observation.num_sims", obs.num_sims,
                 f"must be between 1 and len(trainer_params.train_sim) = {len(tp.train_sim)}")

    _require(tp.epochs >= 1, "trainer_params.epochs", tp.epochs, "must be >= 1")
    _require(_finite(tp.alpha) and 0 <= tp.alpha <= 1, "trainer_params.alpha", tp.alpha, "must be in [0, 1]")
    _require(tp.interleave_frequency >= 1, "trainer_params.interleave_frequency", tp.interleave_frequency, "must be >= 1")
    _require(0 <= tp.warmup_epochs <= tp.epochs, "trainer_params.warmup_epochs", tp.warmup_epochs,
             f"must be between 0 and trainer_params.epochs = {tp.epochs}")
    _require(tp.num_random_ics >= 0, "trainer_params.num_random_ics", tp.num_random_ics, "must be >= 0")
    _require(tp.interaction_region in INTERACTION_REGIONS or _box_ok(tp.interaction_region, ndim),
             "trainer_params.interaction_region", tp.interaction_region,
             f"must be one of {list(INTERACTION_REGIONS)} or a box of one [lo, hi] per axis ({ndim}, x first) "
             "with 0 <= lo < hi <= 1")
    _require(tp.interaction_observed_starts or tp.num_random_ics > 0, "trainer_params.num_random_ics",
             tp.num_random_ics, "must be >= 1 when trainer_params.interaction_observed_starts is false "
             "(the interaction needs initial states)")
    _require(_finite(tp.alpha_physical) and 0 <= tp.alpha_physical <= 1, "trainer_params.alpha_physical",
             tp.alpha_physical, "must be in [0, 1]")
    max_pred = data.num_steps // obs.stride
    _require(1 <= tp.num_predict_steps <= max_pred, "trainer_params.num_predict_steps", tp.num_predict_steps,
             f"must be between 1 and data.num_steps // data.observation.stride = {max_pred}")

    syn = tp.synthetic
    _require(_finite(syn.learning_rate) and syn.learning_rate > 0, "trainer_params.synthetic.learning_rate", syn.learning_rate, "must be > 0")
    _require(syn.batch_size >= 1, "trainer_params.synthetic.batch_size", syn.batch_size, "must be >= 1")
    OPTIMIZERS.get(syn.optimizer)
    _require(syn.lr_schedule in ("constant", "cosine"), "trainer_params.synthetic.lr_schedule", syn.lr_schedule,
             "must be 'constant' or 'cosine'")
    _require(_finite(syn.lr_floor) and 0 < syn.lr_floor <= 1, "trainer_params.synthetic.lr_floor", syn.lr_floor,
             "must be in (0, 1]")
    METRICS.get(tp.metric)
    _require(tp.keep_best in (None, *BEST_METRICS), "trainer_params.keep_best", tp.keep_best,
             f"must be null or one of {list(BEST_METRICS)}")
    phys = tp.physical
    THETA_OPTIMIZERS.get(phys.method)  # an unknown name lists the registered ones
    _require(_finite(phys.learning_rate) and phys.learning_rate > 0, "trainer_params.physical.learning_rate",
             phys.learning_rate, "must be > 0")
    _require(_finite(phys.abs_tol) and phys.abs_tol > 0, "trainer_params.physical.abs_tol", phys.abs_tol, "must be > 0")
    _require(phys.max_iterations >= 1, "trainer_params.physical.max_iterations", phys.max_iterations, "must be >= 1")

    if tp.schedule:
        check_schedule(cfg, validate)

    # sizes that cannot fit, before anything is built (1 channel: a lower bound), then exactly
    check_limits(cfg, 1, tuple(reversed(cfg.model.physical.resolution)))
    # each component validates its own options (and the registry its name)
    problem = PROBLEMS.build(cfg.model.physical.name, cfg.model.physical)
    check_limits(cfg, len(problem.channels), problem.array_shape)
    with torch.device("meta"):  # the network checks its options; parameters take no memory here
        MODELS.build(cfg.model.synthetic.name, ndim=problem.ndim, channels=len(problem.channels),
                     periodic=problem.periodic, **cfg.model.synthetic.options)
