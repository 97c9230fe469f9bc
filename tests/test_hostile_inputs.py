"""Issue 21: hostile or broken files and values get one line and exit 2 (no hang, no traceback)."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import pytest

from hyco.config.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES
from hyco_ray.cli import main


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hyco: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging (the old code hung on a YAML bomb)."""

    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\nname: bomb\n"


def test_a_yaml_bomb_space_file_is_one_line(tmp_path, capsys):
    """21.3: 9 levels of anchors (9**9 nodes) hung in OmegaConf; now refused after parsing, in well under a second."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    with _deadline(20):
        assert main(["tune", str(path), "--dry-run"]) == 2
    _one_line_error(capsys, "bomb.yaml", f"{MAX_NODES:,} nodes")


def test_deep_nesting_in_a_space_or_config_file_is_one_line(tmp_path, capsys):
    """21.3: 20,000 levels of nesting gave a 2,999-line RecursionError."""
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    assert main(["tune", str(path), "--dry-run"]) == 2
    _one_line_error(capsys, "deep.yaml", f"deeper than {MAX_DEPTH}")
    assert main(["train", "--config-file", str(path)]) == 2
    _one_line_error(capsys, "config file", f"deeper than {MAX_DEPTH}")


def test_a_binary_space_file_is_one_line(tmp_path, capsys):
    """21.3: a binary file gave a UnicodeDecodeError traceback."""
    path = tmp_path / "bin.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    assert main(["tune", str(path), "--dry-run"]) == 2
    _one_line_error(capsys, "bin.yaml", "not a UTF-8 text file")
    assert main(["train", "--config-file", str(path)]) == 2
    _one_line_error(capsys, "bin.yaml", "not a UTF-8 text file")


def test_a_directory_as_space_file_is_named_a_directory(tmp_path, capsys):
    """21.3: a directory was reported as "does not exist"."""
    assert main(["tune", str(tmp_path), "--dry-run"]) == 2
    _one_line_error(capsys, str(tmp_path), "is a directory")


def test_an_oversized_space_file_is_one_line(tmp_path, capsys):
    """21.3: the file size is bounded before it is read."""
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_BYTES + "\nname: big\n")
    assert main(["tune", str(path), "--dry-run"]) == 2
    _one_line_error(capsys, "big.yaml", f"the limit is {MAX_BYTES:,}")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "x: 1\n"])
def test_bounded_loader_reads_ordinary_and_recursive_yaml(text):
    """The bounds do not reject ordinary files; a self-referencing anchor neither hangs nor overflows."""
    from hyco.config.yamlfile import load_yaml_text

    assert isinstance(load_yaml_text(text, "t"), dict)


SPACE = "search_spaces/burgers_quick.yaml"


def test_a_billion_samples_is_refused_with_the_limit(capsys):
    """21.5: `num_samples: 1000000000` started a sweep."""
    from hyco_ray.core.space import MAX_NUM_SAMPLES

    assert main(["tune", SPACE, "num_samples=1000000000", "--dry-run"]) == 2
    _one_line_error(capsys, "num_samples", "1000000000", f"1 to {MAX_NUM_SAMPLES:,}")


@pytest.mark.parametrize("cpus", ["0", "-2"])
def test_num_cpus_below_one_is_refused(capsys, cpus):
    """21.5: `--num-cpus 0` meant all CPUs (Ray's falsy default)."""
    assert main(["tune", SPACE, "--num-cpus", cpus, "--dry-run"]) == 2
    _one_line_error(capsys, f"--num-cpus is {cpus}", "at least 1")


def test_dry_run_makes_the_real_runs_resource_check(capsys):
    """21.17: `--dry-run --gpus-per-trial 1` on a CPU host printed a plan the real run refuses (tests hide GPUs)."""
    assert main(["tune", SPACE, "--gpus-per-trial", "1", "--dry-run"]) == 2
    _one_line_error(capsys, "resources.gpu is 1", "0 GPUs")


def test_param_error_is_never_an_objective(capsys, tmp_path):
    """21.17: the README says param_error (needs the true θ*) is never an objective; `--metric param_error` was accepted."""
    assert main(["tune", SPACE, "--metric", "param_error", "--dry-run"]) == 2
    _one_line_error(capsys, "param_error", "never an objective")
    path = tmp_path / "two.yaml"
    path.write_text("name: two\nbase: burgers_hybrid_quick_test\nobjectives: {val_loss: min, param_error: min}\n"
                    "searcher: {sampler: nsga2}\nspace: {trainer_params.alpha: {type: uniform, low: 0.1, high: 0.9}}\n")
    assert main(["tune", str(path), "--dry-run"]) == 2
    _one_line_error(capsys, "objectives.param_error", "never an objective")


@contextmanager
def _read_only_tmpfs(tmp_path):
    """A read-only filesystem (root can write through chmod, not through a read-only mount)."""
    import subprocess

    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_read_only_storage_path_is_one_line_before_any_work(tmp_path, capsys):
    """21.6: a read-only storage path ended in a traceback (after simulating data); now refused first, dry run too."""
    with _read_only_tmpfs(tmp_path) as ro:
        for extra in (["--dry-run"], []):
            assert main(["tune", SPACE, "--storage-path", str(ro), *extra]) == 2
            _one_line_error(capsys, "storage_path", str(ro), "not writable")
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["tune", SPACE, "--storage-path", str(afile / "sweeps"), "--dry-run"]) == 2
    _one_line_error(capsys, "storage_path", "is a file, not a directory")


def test_export_and_report_to_an_unwritable_place_are_one_line(tmp_path, capsys):
    """21.6: `hyco export -o <unwritable dir>/best.yaml` (and report -o) ended in tracebacks."""
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["export", str(tmp_path), "-o", str(afile / "best.yaml")]) == 2
    _one_line_error(capsys, "-o", "is a file, not a directory")
    assert main(["export", str(tmp_path), "-o", str(tmp_path)]) == 2
    _one_line_error(capsys, "-o", "is a directory")
    assert main(["export", str(tmp_path), "-o", "/proc/hyco-no-such/best.yaml"]) == 2
    _one_line_error(capsys, "-o", "/proc/hyco-no-such")
    with _read_only_tmpfs(tmp_path) as ro:
        assert main(["export", str(tmp_path), "-o", str(ro / "new" / "best.yaml")]) == 2
        _one_line_error(capsys, "-o", "not writable")
        assert main(["report", str(tmp_path), "-o", str(ro / "report")]) == 2
        _one_line_error(capsys, "report directory", "not writable")


def test_a_python_tag_in_a_sweeps_spec_is_one_line_and_runs_nothing(tmp_path, capsys):
    """21.6: a python tag in hyco_sweep.yaml gave export/report a 48-line traceback."""
    marker = tmp_path / "pwned"
    (tmp_path / "hyco_sweep.yaml").write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    for command in (["export", str(tmp_path), "-o", str(tmp_path / "best.yaml")], ["report", str(tmp_path)]):
        assert main(command) == 2
        _one_line_error(capsys, "hyco_sweep.yaml", "python/object")
    assert not marker.exists()


def test_an_override_typo_names_the_nearest_key(capsys):
    """21.17: a typo got Hydra's "use +trainer_params.alpah=0.5" advice, which fails again; now the nearest key."""
    assert main(["train", "burgers_hybrid_quick_test", "trainer_params.alpah=0.5"]) == 2
    err = _one_line_error(capsys, "trainer_params.alpah", "did you mean trainer_params.alpha?")
    assert "+trainer_params" not in err
    assert main(["tune", SPACE, "tranier_params.alpha=0.5", "--dry-run"]) == 2
    _one_line_error(capsys, "did you mean trainer_params.alpha?")
    assert main(["train", "burgers_hybrid_quick_test", "trainer_params.zzzzzz=1"]) == 2
    _one_line_error(capsys, "keys under trainer_params:", "alpha", "epochs")
