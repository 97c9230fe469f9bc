"""Configuration: every kind of mistake is one ConfigError naming the key; shipped configs load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hyco.config import available_configs, config_to_yaml, load_config, load_config_file
from hyco.config.schema import RunConfig
from hyco.errors import ConfigError

BASE = "burgers_physical_quick_test"
SHIPPED = [
    "burgers_hybrid_experiment",
    "burgers_hybrid_quick_test",
    "burgers_physical_quick_test",
    "heat_hybrid_quick_test",
    "smoke_hybrid_quick_test",
]
SRC = Path(__file__).resolve().parent.parent / "src"


def config_error(name: str, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(name, overrides)
    message = str(info.value)
    assert "Traceback" not in message
    return message


def test_unknown_config_name_lists_the_available_ones():
    message = config_error("no_such_experiment", [])
    assert "no_such_experiment" in message
    for name in SHIPPED:
        assert name in message


MISTAKES = {
    "unknown problem": (["model.physical.name=wave"], "model.physical.name", "burgers"),
    "unknown key (appended)": (["+trainer_params.foo=1"], "trainer_params.foo", None),
    "unknown key": (["trainer_params.foo=1"], "trainer_params.foo", None),
    "wrong type": (["trainer_params.epochs=abc"], "trainer_params.epochs", "abc"),
    "float for int": (["trainer_params.epochs=2.5"], "trainer_params.epochs", None),
    "negative viscosity": (["model.physical.params.viscosity.truth=[-0.05]"], "model.physical.params.viscosity", "> 0"),
    "negative guess": (["model.physical.params.viscosity.guess=[-0.05]"], "model.physical.params.viscosity", "> 0"),
    "mask fraction 0": (
        ["data.observation.mask=random", "data.observation.fraction=0"],
        "data.observation.fraction",
        "(0, 1]",
    ),
    "mask fraction 1.5": (
        ["data.observation.mask=random", "data.observation.fraction=1.5"],
        "data.observation.fraction",
        "(0, 1]",
    ),
    "zero sims": (["data.num_simulations=0"], "data.num_simulations", ">= 1"),
    "negative noise": (["data.observation.noise=-0.1"], "data.observation.noise", None),
    "unknown optimizer method": (["trainer_params.physical.method=newton"], "trainer_params.physical.method", "L-BFGS-B"),
    "alpha above 1": (["trainer_params.alpha=1.5"], "trainer_params.alpha", "[0, 1]"),
    "alpha below 0": (["trainer_params.alpha=-0.1"], "trainer_params.alpha", "[0, 1]"),
    "alpha nan": (["trainer_params.alpha=nan"], "trainer_params.alpha", None),
    "warmup longer than training": (
        ["trainer_params.epochs=3", "trainer_params.warmup_epochs=5"],
        "trainer_params.warmup_epochs",
        "trainer_params.epochs",
    ),
    "overlapping train/val sims": (
        ["trainer_params.train_sim=[0,1,2,3]", "trainer_params.val_sim=[3,4]"],
        "trainer_params.val_sim",
        "train_sim",
    ),
    "overlapping val/test sims": (
        ["trainer_params.val_sim=[4,5]", "trainer_params.test_sim=[5,6]"],
        "trainer_params.test_sim",
        "val_sim",
    ),
    "sim index out of range": (["trainer_params.test_sim=[6,8]"], "trainer_params.test_sim", "data.num_simulations"),
    "region reversed": (
        ["data.observation.mask=region", "data.observation.region=[[0.5,0.2]]"],
        "data.observation.region",
        None,
    ),
    "region outside [0,1]": (
        ["data.observation.mask=region", "data.observation.region=[[0.2,1.5]]"],
        "data.observation.region",
        None,
    ),
    "region missing": (["data.observation.mask=region"], "data.observation.region", None),
    "region with 3 numbers": (
        ["data.observation.mask=region", "data.observation.region=[[0.1,0.2,0.3]]"],
        "data.observation.region",
        None,
    ),
    "unknown mask": (["data.observation.mask=stripes"], "data.observation.mask", "random"),
    "zero stride": (["data.observation.stride=0"], "data.observation.stride", None),
    "too many predict steps": (
        ["data.num_steps=30", "trainer_params.num_predict_steps=31"],
        "trainer_params.num_predict_steps",
        None,
    ),
    "unknown problem option": (["+model.physical.options.foo=1"], "model.physical.options", "foo"),
    "wrong resolution rank": (["model.physical.resolution=[8,8,8]"], "model.physical.resolution", None),
    "non-positive dt": (["model.physical.dt=0"], "model.physical.dt", None),
    "unknown dtype": (["run_params.dtype=float16"], "run_params.dtype", None),
    "unknown lr schedule": (["trainer_params.synthetic.lr_schedule=step"], "trainer_params.synthetic.lr_schedule",
                            "cosine"),
    "lr floor above 1": (["trainer_params.synthetic.lr_floor=2"], "trainer_params.synthetic.lr_floor", None),
}


@pytest.mark.parametrize("overrides, key, detail", list(MISTAKES.values()), ids=list(MISTAKES))
def test_mistake_is_a_config_error_naming_the_key(tmp_path, overrides, key, detail):
    message = config_error(BASE, [f"data.cache_dir={tmp_path}", *overrides])
    assert key in message, message
    if detail is not None:
        assert detail in message, message


def test_region_needs_one_pair_per_axis_in_2d(tmp_path):
    message = config_error(
        "heat_hybrid_quick_test",
        [f"data.cache_dir={tmp_path}", "data.observation.mask=region", "data.observation.region=[[0.1,0.5]]"],
    )
    assert "data.observation.region" in message and "2" in message
    cfg = load_config(
        "heat_hybrid_quick_test",
        [f"data.cache_dir={tmp_path}", "data.observation.mask=region", "data.observation.region=[[0.1,0.5],[0.2,0.6]]"],
    )
    assert cfg.data.observation.region == [[0.1, 0.5], [0.2, 0.6]]


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.yaml")


def test_all_shipped_configs_load(tmp_path):
    assert sorted(SHIPPED) == sorted(n for n in available_configs() if n in SHIPPED)
    for name in available_configs():
        cfg = load_config(name, [f"data.cache_dir={tmp_path}"])
        assert isinstance(cfg, RunConfig)
        assert cfg.data.cache_dir == str(tmp_path)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_schema_key_can_be_overridden_without_plus(tmp_path, name):
    """The same overrides must work for every config (search spaces apply them to any problem)."""
    ndim = len(load_config(name, [f"data.cache_dir={tmp_path}"]).model.physical.resolution)
    region = "[" + ",".join(["[0.0,0.5]"] * ndim) + "]"
    overrides = [
        f"data.cache_dir={tmp_path}",
        "data.observation.mask=region",
        f"data.observation.region={region}",
        "data.observation.fraction=0.5",
        "data.observation.num_sims=1",
        "trainer_params.physical.abs_tol=1e-5",
        "trainer_params.synthetic.optimizer=adamw",
        "run_params.dtype=float64",
        "model.synthetic.options.depth=1",
    ]
    cfg = load_config(name, overrides)
    assert cfg.data.observation.fraction == 0.5 and cfg.data.observation.num_sims == 1
    assert cfg.run_params.dtype == "float64" and cfg.model.synthetic.options["depth"] == 1


def test_exported_yaml_round_trips(tmp_path):
    cfg = load_config(BASE, [f"data.cache_dir={tmp_path}", "trainer_params.alpha=0.7", "data.seed=4"])
    path = tmp_path / "exported.yaml"
    path.write_text(config_to_yaml(cfg))
    assert load_config_file(path) == cfg


EVAL_CALL = re.compile(r"(?<![\w.])eval\s*\(")  # the builtin, not model.eval() or literal_eval(


def test_no_eval_in_src():
    offenders = []
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no sources under {SRC}"
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if EVAL_CALL.search(code) or re.search(r"(?<![\w.])exec\s*\(", code):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offenders, offenders
    # and no OmegaConf resolver that evaluates strings
    for path in files:
        assert 'register_new_resolver("eval"' not in path.read_text()


def test_heat_centres_must_match_the_amplitudes(tmp_path):
    message = config_error(
        "heat_hybrid_quick_test",
        [
            f"data.cache_dir={tmp_path}",
            "model/physical=heat_centres",
            "model.physical.params.centres.truth=[0.2,0.3]",
            "model.physical.params.centres.guess=[0.2,0.3]",
        ],
    )
    assert "model.physical.params.centres" in message and "6" in message
    message = config_error(
        "heat_hybrid_quick_test", [f"data.cache_dir={tmp_path}", "+model.physical.options.learn_centres=true"]
    )
    assert "model.physical.params" in message and "centres" in message


def test_device_defaults_to_auto_and_setup_keeps_an_existing_torch():
    """Issue 10.10: `hyco train` stayed on the CPU of a GPU machine unless run_params.device=auto;
    scripts/setup.sh made a venv blind to the user's CUDA torch, then installed the CPU build."""
    import subprocess
    from pathlib import Path

    import torch

    from hyco.config import load_config
    from hyco.runtime import resolve_device

    cfg = load_config("burgers_hybrid_quick_test")
    assert cfg.run_params.device == "auto"
    assert resolve_device(cfg.run_params).type == ("cuda" if torch.cuda.is_available() else "cpu")
    setup = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(setup)]).returncode == 0
    text = setup.read_text()
    assert '-c "import torch"' in text and "--system-site-packages" in text
