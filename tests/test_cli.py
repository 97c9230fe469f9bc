"""The library commands of `hyco`, run in-process through the console-script entry point."""

from __future__ import annotations

import json

from hyco_ray.cli import main

SMALL = [
    "data.num_simulations=6",
    "data.num_steps=10",
    "trainer_params.train_sim=[0,1]",
    "trainer_params.val_sim=[2,3]",
    "trainer_params.test_sim=[4,5]",
    "trainer_params.num_predict_steps=3",
    "trainer_params.epochs=3",
    "trainer_params.warmup_epochs=1",
    "model.synthetic.options.base_channels=8",
]


def test_train_then_evaluate(tmp_path, cache_dir, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "burgers_hybrid_quick_test", f"data.cache_dir={cache_dir}", *SMALL, "--run-dir", str(run_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "conversion" in out and str(run_dir) in out
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert main(["evaluate", str(run_dir)]) == 0
    scores = json.loads((run_dir / "test_metrics.json").read_text())
    assert scores["epoch"] == 3 and scores["test_loss_physical"] < scores["test_loss_synthetic"] + 1

    # the resolved config reruns as a file and gives the same numbers
    rerun = tmp_path / "rerun"
    assert main(["train", "--config-file", str(run_dir / "config.yaml"), "--run-dir", str(rerun)]) == 0
    assert (rerun / "metrics.jsonl").read_text().splitlines()[-1].split('"time_')[0] == lines[-1].split('"time_')[0]


def test_data_command_reuses_cache(tmp_path, capsys):
    args = [
        "data",
        "burgers_hybrid_quick_test",
        f"data.cache_dir={tmp_path}",
        "data.num_simulations=3",
        "data.num_steps=4",
        "trainer_params.train_sim=[0]",
        "trainer_params.val_sim=[1]",
        "trainer_params.test_sim=[2]",
        "trainer_params.num_predict_steps=2",
    ]
    assert main(args) == 0
    assert "simulated" in capsys.readouterr().out
    assert main(args) == 0
    assert "cache hit" in capsys.readouterr().out


def test_bad_input_is_one_clear_error(capsys):
    assert main(["train", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert "no config named 'no_such_config'" in err and "burgers_hybrid_quick_test" in err
    assert main(["train", "burgers_hybrid_quick_test", "trainer_params.alpha=2"]) == 2
    assert "trainer_params.alpha is 2.0, but must be in [0, 1]" in capsys.readouterr().err
    assert main(["train", "burgers_hybrid_quick_test", "trainer_params.warmup_epochs=50"]) == 2
    assert "trainer_params.warmup_epochs" in capsys.readouterr().err


def test_same_run_with_and_without_hyco_data_first(tmp_path, capsys):
    """The cache key holds the precision and `hyco data` simulates in the run's precision, so a run
    gets the same numbers whichever command filled the cache, in float32 and in float64 (before,
    `hyco data` simulated in whatever precision the process had: ~1e-7 apart under one key)."""
    from phiml import math

    from hyco.config import load_config
    from hyco.training import create_trainer

    def metrics(cache: str, dtype: str) -> list[dict]:
        cfg = load_config("burgers_hybrid_quick_test", [f"data.cache_dir={cache}", *SMALL, f"run_params.dtype={dtype}"])
        return [{k: v for k, v in m.items() if not k.startswith("time_")} for m in create_trainer(cfg).fit()]

    before = math.get_precision()
    try:
        for dtype, other in (("float32", 64), ("float64", 32)):
            direct = metrics(str(tmp_path / f"direct-{dtype}"), dtype)
            math.set_global_precision(other)  # a process whose precision is not the run's
            cache = tmp_path / f"data-first-{dtype}"
            assert main(["data", "burgers_hybrid_quick_test", f"data.cache_dir={cache}", *SMALL,
                         f"run_params.dtype={dtype}"]) == 0
            assert "simulated" in capsys.readouterr().out
            assert metrics(str(cache), dtype) == direct, dtype
    finally:
        math.set_global_precision(before)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("hyco: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_resume_without_run_dir_is_refused(capsys):
    """Issue 10.6: `hyco train --resume` without --run-dir silently started a fresh run."""
    assert main(["train", "burgers_hybrid_quick_test", "--resume"]) == 2
    _one_line_error(capsys, "--resume needs --run-dir")


def test_an_existing_run_dir_is_not_overwritten(tmp_path, cache_dir, capsys):
    """Issue 10.6: --run-dir of a finished run without --resume truncated its metrics and checkpoint."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1}\n')
    args = ["train", "burgers_hybrid_quick_test", f"data.cache_dir={cache_dir}", *SMALL, "--run-dir", str(run_dir)]
    assert main(args) == 2
    _one_line_error(capsys, "already holds a run", "--resume")
    assert (run_dir / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    assert main([*args[:-2], "--run-dir", str(tmp_path / "empty"), "--resume"]) == 2
    _one_line_error(capsys, "nothing to resume")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_malicious_checkpoint_runs_nothing(tmp_path, cache_dir, capsys):
    """Issue 11.1: torch.load(weights_only=False) ran a crafted checkpoint's code."""
    import torch

    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    args = ["train", "burgers_hybrid_quick_test", f"data.cache_dir={cache_dir}", *SMALL, "trainer_params.epochs=1",
            "--run-dir", str(run_dir)]
    assert main(args) == 0
    capsys.readouterr()
    torch.save({"model": _Payload(marker)}, run_dir / "checkpoint.pt")
    assert main(["evaluate", str(run_dir)]) == 2
    _one_line_error(capsys, "refused checkpoint", "checkpoint.pt", "could run code")
    assert main([*args, "--resume"]) == 2
    _one_line_error(capsys, "refused checkpoint")
    assert not marker.exists(), "the checkpoint's code ran"


def test_truncated_checkpoint_and_broken_yaml_are_one_line(tmp_path, capsys):
    """Issue 11.5: a truncated checkpoint printed a torch traceback, broken YAML a 62-line parser one."""
    import torch

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"w": torch.zeros(1000)}, run_dir / "checkpoint.pt")
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert main(["evaluate", str(run_dir)]) == 2
    _one_line_error(capsys, "checkpoint.pt", "not readable")
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer_params:\n  alpha: [0.5\n  epochs: 3\n")
    assert main(["train", "--config-file", str(broken)]) == 2
    _one_line_error(capsys, "broken.yaml", "not valid YAML", "line")


def test_an_infinite_val_loss_ends_the_run_as_diverged(tmp_path, cache_dir, capsys):
    """Issue 11.2: learning_rate=1e5 exited 0 with "val_loss": Infinity."""
    args = ["train", "burgers_hybrid_quick_test", f"data.cache_dir={cache_dir}", *SMALL,
            "trainer_params.synthetic.learning_rate=1e5", "--run-dir", str(tmp_path / "run")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "diverged (NaN or inf)" in err and "Traceback" not in err, err


def test_sizes_that_cannot_fit_are_refused_before_any_work(tmp_path, capsys):
    """Issue 11.6: a resolution of 10^8 allocated for 105 s before failing; [1e5, 1e5] asked for
    160 GB, base_channels 1e5 for 120 GB; num_simulations 1e9 started simulating."""
    import time

    from hyco.config import load_config

    cache = tmp_path / "cache"
    bad = [
        ("burgers_hybrid_quick_test", "model.physical.resolution=[100000000]"),
        ("heat_hybrid_quick_test", "model.physical.resolution=[100000,100000]"),
        ("burgers_hybrid_quick_test", "model.synthetic.options.base_channels=100000"),
        ("burgers_hybrid_quick_test", "data.num_simulations=1000000000"),
    ]
    for name, override in bad:
        tic = time.time()
        assert main(["train", name, override, f"data.cache_dir={cache}", "run_params.max_memory_gb=64",
                     "--run-dir", str(tmp_path / "run")]) == 2
        wall = time.time() - tic
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "GB" in err and "limit of 64 GB (run_params.max_memory_gb)" in err, err
        assert wall < 5, (override, wall)
    assert not cache.exists() and not (tmp_path / "run").exists()  # nothing simulated, nothing written
    # a sweep whose space reaches such a size is refused before Ray starts
    from sweep_util import BASE_SPACE, write_space

    space = write_space(tmp_path, overrides=[o for o in BASE_SPACE["overrides"] if "base_channels" not in o],
                        space={"model.synthetic.options.base_channels": {"type": "choice", "values": [8, 100000]}})
    assert main(["tune", str(space)]) == 2
    assert "space.model.synthetic.options.base_channels: value 100000" in capsys.readouterr().err
    assert not (tmp_path / "sweeps").exists()
    # a bigger machine raises the limit explicitly
    load_config("burgers_hybrid_quick_test", ["model.synthetic.options.base_channels=100000", "run_params.max_memory_gb=1e6"])


def test_group_overrides_work_on_a_config_file_and_hydra_keys_are_refused(tmp_path, capsys):
    """Issue 10.8: `model/physical=burgers_2d` worked on a config name but not on an exported file;
    `hydra.run.dir=...` was accepted and ignored."""
    from hyco.config import config_to_yaml, load_config, load_config_file

    path = tmp_path / "best.yaml"
    path.write_text(config_to_yaml(load_config("burgers_hybrid_quick_test", ["trainer_params.alpha=0.3"])))
    cfg = load_config_file(path, ["model/physical=burgers_2d"])
    assert cfg.model.physical.resolution == [64, 64] and cfg.trainer_params.alpha == 0.3
    for args in (["train", "burgers_hybrid_quick_test", "hydra.run.dir=/tmp/x"],
                 ["train", "--config-file", str(path), "hydra.run.dir=/tmp/x"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "hydra.run.dir" in err and "--run-dir" in err, err
