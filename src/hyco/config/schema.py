"""Typed run configuration: one place for defaults; OmegaConf rejects unknown keys and wrong types.

Range checks live in :mod:`hyco.config.validate`. Units: times in the problem's time units,
``noise`` relative to max|u| of each training trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunParams:
    experiment_name: str = "hyco"
    mode: list[str] = field(default_factory=lambda: ["train"])
    model_type: str = "hybrid"
    seed: int = 0
    output_dir: str = "runs"
    device: str = "auto"  # auto (cuda where torch sees a GPU, else cpu) | cpu | cuda
    num_threads: int = 1  # torch intra-op threads; same value needed for bitwise reruns
    dtype: str = "float32"  # float32 | float64
    max_memory_gb: float | None = None  # refuse runs estimated larger (hyco.config.limits); None: the RAM


@dataclass
class ParameterSpec:
    """One learnable physical parameter (or a vector of them, e.g. bump amplitudes)."""

    truth: list[float] = field(default_factory=list)
    guess: list[float] = field(default_factory=list)


@dataclass
class PhysicalModelConfig:
    name: str = "burgers"
    resolution: list[int] = field(default_factory=lambda: [128])
    dt: float = 0.01
    substeps: int = 1
    jit: bool = True  # trace each frame with math.jit_compile (same numbers, ~10x faster on CPU)
    params: dict[str, ParameterSpec] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyntheticModelConfig:
    """A registered network (:data:`hyco.registry.MODELS`) and its own options (the keyword
    arguments of its constructor besides ``ndim``, ``channels``, ``periodic``; it checks them)."""

    name: str = "unet"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    physical: PhysicalModelConfig = field(default_factory=PhysicalModelConfig)
    synthetic: SyntheticModelConfig = field(default_factory=SyntheticModelConfig)


@dataclass
class ObservationConfig:
    mask: str = "full"  # full | region | random | sensors
    region: list[list[float]] = field(default_factory=list)  # per axis [lo, hi] as fractions
    # mask=sensors: one path per sensor, waypoints [t, x(, y)] as fractions of the observed horizon
    # and of the domain; one waypoint = a fixed sensor; linear in between, read in the cell it is in
    sensors: list[list[list[float]]] = field(default_factory=list)
    fraction: float = 1.0  # kept fraction of points for mask=random
    noise: float = 0.0
    stride: int = 1  # temporal stride of observed frames
    num_sims: int | None = None  # use only the first n training sims


@dataclass
class SimulationConfig:
    """How the data are made, when not by P itself (model error, docs/extending.md)."""

    # k > 1: simulate on a grid k times finer per axis with a k^2 smaller step (same frame times),
    # then restrict to P's grid by cell averages; 1: P's own grid and step (an inverse crime)
    refine: int = 1
    # r > 0: the data's PDE has a term P lacks, a linear loss -r u (heat only: there it is exact as
    # the factor exp(-r t) on every frame, the heat operator being linear and r constant); 0: none
    decay: float = 0.0


@dataclass
class DataConfig:
    num_simulations: int = 8
    num_steps: int = 20
    seed: int = 0
    cache_dir: str = "~/.cache/hyco"
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)


@dataclass
class SyntheticTrainerConfig:
    learning_rate: float = 1e-3
    batch_size: int = 16
    optimizer: str = "adam"
    # "constant", or "cosine": from learning_rate down to lr_floor * learning_rate at the last
    # epoch (S's val error settles by the end of any budget instead of jittering at a fixed rate)
    lr_schedule: str = "constant"
    lr_floor: float = 0.05


@dataclass
class PhysicalTrainerConfig:
    # theta's optimiser (hyco.registry.THETA_OPTIMIZERS): L-BFGS-B, BFGS, or adam (the HYCO
    # authors'; max_iterations Adam steps of learning_rate per physical step)
    method: str = "L-BFGS-B"
    learning_rate: float = 0.01  # adam only: step size in the scaled variable (1 ~ a factor e in theta)
    abs_tol: float = 1e-6
    max_iterations: int = 5
    # True: the iterate at max_iterations is kept (HYCO takes a few iterations per epoch by design)
    suppress_convergence_errors: bool = True
    # optimise the observed sims' initial states with theta (removes the errors-in-variables
    # bias of rollouts from noisy starts); frame 0 then counts as an observed frame
    fit_initial_state: bool = True


#: trainer_params keys a schedule may change between epochs (read afresh every epoch)
SCHEDULABLE = ("alpha", "alpha_physical", "physical.max_iterations", "interleave_frequency",
               "synthetic.learning_rate", "interaction_region")


@dataclass
class ScheduleStep:
    """From epoch ``from_epoch`` on (1-based, as reported), train with these ``trainer_params``
    values (keys relative to trainer_params, among :data:`SCHEDULABLE`): a PBT trial's settings."""

    from_epoch: int = 0
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerParams:
    train_sim: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    val_sim: list[int] = field(default_factory=lambda: [4, 5])
    test_sim: list[int] = field(default_factory=lambda: [6, 7])
    epochs: int = 5
    num_predict_steps: int = 5
    alpha: float = 0.5  # S's data weight: alpha * L_data(S) + (1 - alpha) * L_int(S, P)
    # P's data weight: its step minimises alpha_physical * L_data(P) + (1 - alpha_physical) * L_int(P, S).
    # The coupling (HybridTrainer.couple) reads both weights, so both live here; before issue 22 this was
    # trainer_params.physical.alpha, where the physical trainer, which never reads it, kept it
    alpha_physical: float = 0.99
    interleave_frequency: int = 1
    warmup_epochs: int = 0
    num_random_ics: int = 2  # fresh random interaction ICs per epoch, besides the real ones
    interaction_observed_starts: bool = True  # compare the models from frame 0 of the observed sims too
    # where L_int compares the models: "unobserved" (outside the observation mask, as the HYCO
    # authors do with localised data; nothing when every point is observed), "all", or a box
    # [[x0, x1], [y0, y1]] as fractions of the domain per axis
    interaction_region: Any = "unobserved"
    # validation metric of both models' full rollouts (a name in hyco.registry.METRICS)
    metric: str = "relative_l2"
    # a val metric (val_loss, val_loss_synthetic, val_loss_physical): keep the state (S and P) of the
    # epoch where it was lowest and end the run with it (test metrics, saved model); null: the last epoch's
    keep_best: str | None = None
    synthetic: SyntheticTrainerConfig = field(default_factory=SyntheticTrainerConfig)
    physical: PhysicalTrainerConfig = field(default_factory=PhysicalTrainerConfig)
    # changes of the settings above during training, in epoch order (empty: fixed settings)
    schedule: list[ScheduleStep] = field(default_factory=list)


@dataclass
class RunConfig:
    run_params: RunParams = field(default_factory=RunParams)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer_params: TrainerParams = field(default_factory=TrainerParams)
