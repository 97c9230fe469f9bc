"""The ``hyco`` command: train / data / evaluate (library only) and tune / export / report (Ray).

Ray is imported only when a sweep starts, so ``hyco train`` starts fast and debugs easily.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import warnings
from contextlib import suppress
from pathlib import Path

import pandas as pd

from hyco.config import available_configs, load_config, load_config_file
from hyco.errors import HycoError, TrainingError
from hyco_ray.core.analysis import export_best, write_report
from hyco_ray.core.space import load_space
from hyco_ray.core.sweep_dir import DISK_FULL_ERRNOS
from hyco_ray.runner import sweep
from hyco_ray.runner.quiet import FilteredStream


def _load(args: argparse.Namespace):
    if args.config_file:
        overrides = ([args.config] if args.config else []) + args.overrides
        return load_config_file(args.config_file, overrides)
    if not args.config:
        raise SystemExit(f"hyco: name a config ({', '.join(available_configs())}) or pass --config-file")
    return load_config(args.config, args.overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from hyco.run import default_run_dir, describe_run, train_run

    if args.resume and not args.run_dir:
        raise HycoError("--resume needs --run-dir: the run directory to continue")
    cfg = _load(args)
    run_dir = Path(args.run_dir or default_run_dir(cfg))
    print(describe_run(train_run(cfg, run_dir, resume=args.resume), run_dir))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from hyco.run import prepare_dataset

    trajectories, path, hit = prepare_dataset(_load(args), progress=True)
    print(f"{'cache hit' if hit else 'simulated'}: {tuple(trajectories.shape)} -> {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hyco.run import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir), indent=2))
    return 0


def _resume_hint(argv: list[str]) -> str:
    """The command that continues this sweep: every argument as given, plus ``--resume``."""
    return f"hyco {shlex.join(a for a in argv if a not in ('--resume', '--in-session'))} --resume"


def _run_in_own_session(argv: list[str], again: str) -> int:
    """Run the sweep driver (and its Ray) in a session of its own: a SIGTERM to our process group
    (``timeout``, job schedulers) or Ctrl-C reaches it as Ctrl-C, so the sweep stops resumably. A
    driver killed by a signal (OOM killer, ``kill -9``) could say nothing: we say it, and ``again``."""
    child = subprocess.Popen([sys.executable, "-m", "hyco_ray.cli", *argv, "--in-session"], start_new_session=True,
                             stderr=subprocess.PIPE, text=True, errors="replace")
    forward = threading.Thread(target=_forward_stderr, args=(child.stderr,), daemon=True)
    forward.start()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: child.send_signal(signal.SIGINT))
    rc = child.wait()
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    forward.join(timeout=5)  # the driver's last lines (its error, if any) before we exit
    if rc < 0:
        name = signal.Signals(-rc).name
        print(f"hyco: error: the driver process (pid {child.pid}) was killed by {name}"
              f"{' (the OOM killer, or kill -9)' if -rc == signal.SIGKILL else ''} and could not stop cleanly; "
              f"its Ray processes are ended at the next start; continue it with: {again}", file=sys.stderr)
        return 128 - rc
    return rc


def _forward_stderr(stream) -> None:
    """The driver's stderr to ours, line by line, through :class:`~hyco_ray.runner.quiet.FilteredStream`
    (Ray's C++ core writes some of its noise to the file descriptor, out of reach of Python)."""
    out = FilteredStream(sys.stderr)
    for line in stream:
        out.write(line)
        out.flush()


def _become_session_driver() -> None:
    """In the driver's own session (``--in-session``): stop with the console, and print through the
    noise filter (Ray prints a dead node's raylet report to ``sys.stdout``, 20 lines of dump)."""
    _stop_when_orphaned(os.getppid())
    sys.stdout = FilteredStream(sys.stdout)


def _stop_when_orphaned(parent: int) -> None:
    """In the driver's session: if the console process dies (SIGKILL, OOM killer), stop the sweep as on
    Ctrl-C (summary, resumable, Ray shut down) instead of running on unseen."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        with suppress(OSError):  # our stderr was the dead console's pipe (_forward_stderr): no EPIPE
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="hyco-orphan-watch").start()


def _one_value_each(args: argparse.Namespace) -> None:
    """A space field set by its flag and by a ``key=value`` too, to different values, is refused: the
    override won, silently (``num_samples=4 --resume --num-samples 5`` ran nothing more)."""
    for flag, kind, key, _ in SPACE_FLAGS:
        if (value := getattr(args, key)) is None:
            continue
        for given in (o.split("=", 1)[1] for o in args.overrides if o.split("=", 1)[0].lstrip("+~") == key):
            with suppress(ValueError):
                if kind(given) == value:
                    continue
            raise HycoError(f"{key} is given twice, {flag} {value} and {key}={given}: give it once "
                            f"(e.g. {key}={value} only, also in the --resume command)")


def cmd_tune(args: argparse.Namespace) -> int:
    _one_value_each(args)
    flags = [f"{key}={v}" for *_, key, _ in SPACE_FLAGS if (v := getattr(args, key)) is not None]
    spec = load_space(args.space, flags + args.overrides)
    if args.dry_run:
        sweep.preflight(spec, address=args.address, num_cpus=args.num_cpus)  # the real run's checks
        print(sweep.plan_text(spec, address=args.address, num_cpus=args.num_cpus, resume=args.resume))
        return 0
    if args.debug:
        final = sweep.debug_run(spec, run_dir=args.run_dir, seed=args.seed)
        print(", ".join(f"{k}={final[k]}" for k in ("epoch", spec.metric, "param_error") if k in final))
        return 0
    if args.console and not args.in_session:  # the console command: the sweep runs in its own session
        return _run_in_own_session(args.argv, _resume_hint(args.argv))
    if args.in_session:
        _become_session_driver()
    outcome = sweep.run_sweep(spec, address=args.address, resume=args.resume, num_cpus=args.num_cpus)
    print(f"sweep directory: {outcome.experiment_dir} ({outcome.wall_s:.0f} s)")
    again = _resume_hint(args.argv)
    if outcome.disk_full:
        print(f"hyco: error: the disk of {outcome.experiment_dir} is full (writing {outcome.disk_full} failed): the "
              f"sweep stopped and its files are whole; free space, then continue it with: {again}", file=sys.stderr)
    elif outcome.exit_code == 130:
        print(f"sweep interrupted; continue it with: {again}")
    elif outcome.exit_code:
        print(f"hyco: error: every one of the {outcome.errored} trials errored; see the trial directories", file=sys.stderr)
    return outcome.exit_code


def cmd_export(args: argparse.Namespace) -> int:
    from hyco_ray.runner.confirm import export_confirmed

    confirmed = None if args.trial else export_confirmed(args.sweep_dir, args.output)
    if confirmed:
        path, why = confirmed
        print(why)
    else:
        path = export_best(args.sweep_dir, args.output, trial_id=args.trial)
    print(f"wrote {path}; run it with: hyco train --config-file {path}")
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    from hyco_ray.runner.confirm import check_args, open_sweep, ranked_trials, run_confirm

    check_args(args.top, args.seeds)  # bad input: one line here, before any session or Ray starts
    ranked_trials(open_sweep(args.sweep_dir))
    if args.console and not args.in_session:  # like tune: Ctrl-C or SIGTERM reaches the driver as Ctrl-C
        return _run_in_own_session(args.argv, f"hyco {shlex.join(a for a in args.argv if a != '--in-session')} "
                                   "(a rerun skips finished runs)")
    if args.in_session:
        _become_session_driver()
    try:
        run_confirm(args.sweep_dir, args.top, args.seeds, address=args.address, num_cpus=args.num_cpus)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    files = write_report(args.sweep_dirs[0], args.output, compare=args.sweep_dirs[1:])
    print("\n".join(f"{kind}: {path}" for kind, path in files.items()))
    if "compare_csv" in files:  # the comparison table
        print(pd.read_csv(files["compare_csv"]).to_string(index=False))
    return 0


#: flags that set a space field: flag, type, the field, help
SPACE_FLAGS = [
    ("--name", str, "name", "sweep name (overrides the file's name)"),
    ("--storage-path", str, "storage_path", "where sweep directories go (overrides the file's storage_path)"),
    ("--num-samples", int, "num_samples", "number of trials"),
    ("--max-concurrent", int, "max_concurrent", "trials running at once"),
    ("--metric", str, "metric", "metric to optimise (default: the file's, else val_loss)"),
    ("--mode", str, "mode", "min or max: minimise or maximise --metric"),
    ("--gpus-per-trial", float, "resources.gpu", "GPUs per trial (fractions share a GPU)"),
    ("--study-storage", str, "searcher.storage", "Optuna study storage: auto (optuna.db in the sweep dir), "
     "sqlite:////abs/study.db, postgresql://..., or journal:///shared/disk/study.log (for an s3:// storage path)"),
]


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per ``cmd_<name>`` above."""
    parser = argparse.ArgumentParser(prog="hyco", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    config = argparse.ArgumentParser(add_help=False)  # the arguments that name a config (train, data)
    config.add_argument("config", nargs="?", help="config name (e.g. burgers_hybrid_quick_test) or a YAML path")
    config.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer_params.alpha=0.7")
    config.add_argument("--config-file", help="a resolved config file, e.g. from hyco export")

    train = sub.add_parser("train", parents=[config], help="one training run in-process, no Ray (the debug run)")
    train.add_argument("--run-dir", help="where to write metrics, checkpoints and figures")
    train.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    sub.add_parser("data", parents=[config], help="simulate and cache the dataset of a config")
    evaluate = sub.add_parser("evaluate", help="score a finished run (or a sweep's trial directory) on the test split")
    evaluate.add_argument("run_dir", help="run directory of hyco train, or <sweep dir>/trial_<id>")

    tune = sub.add_parser(
        "tune", help="run a Ray Tune sweep (Optuna + ASHA) defined by a search-space file",
        description="Local Ray by default; --address or RAY_ADDRESS joins a cluster (Ray >= 2.59 token "
        "auth: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=...; address 'auto' finds a local one).",
    )
    tune.add_argument("space", help="search-space YAML, e.g. search_spaces/burgers_quick.yaml")
    tune.add_argument("overrides", nargs="*", help="key=value: a space field (num_samples=16, scheduler.grace_period=2, "
                      "space.trainer_params.alpha.high=0.5) or a config override for every trial")
    tune.add_argument("--dry-run", action="store_true", help="print the plan (trials, resources, rungs, storage); start nothing")
    tune.add_argument("--address", help="Ray cluster address (ip:port or auto); default: RAY_ADDRESS, else a new local Ray")
    tune.add_argument("--resume", action="store_true", help="continue an interrupted sweep; finished trials are kept")
    tune.add_argument("--debug", action="store_true", help="run the sweep's first sampled config in-process without Ray")
    for flag, kind, key, text in SPACE_FLAGS + [
        ("--num-cpus", int, "num_cpus", "CPUs of the embedded local Ray (default: all)"),
        ("--run-dir", str, "run_dir", "--debug: run directory (default <storage_path>/<name>-debug-<time>)"),
        ("--seed", int, "seed", "--debug: a draw of the sampler with this seed (default: the sweep's first trial, the defaults)"),
    ]:
        tune.add_argument(flag, type=kind, dest=key, help=text)
    tune.add_argument("--in-session", action="store_true", help=argparse.SUPPRESS)

    export = sub.add_parser(
        "export", help="write the best trial's full config for hyco train --config-file",
        description="Default pick: the best complete trial by the sweep's metric; for a multi-objective sweep the knee "
        "of the Pareto front (the front member closest to the utopia point after scaling each objective to [0, 1] "
        "over the front). --trial ID exports any trial (e.g. another front member, listed in summary.md).")
    export.add_argument("sweep_dir", help="sweep directory (<storage_path>/<name>)")
    export.add_argument("-o", "--output", default="best.yaml", help="output YAML (default best.yaml)")
    export.add_argument("--trial", help="export this trial id (any trial) instead of the default pick")

    confirm = sub.add_parser(
        "confirm", help="retrain a sweep's top settings, the defaults and the baselines on fresh seeds; paired verdict",
        description="The top K complete trials, the defaults (the base config with the space's fixed overrides) and, "
        "where the problem trains both models, the physics-only and synthetic-only baselines are retrained at the "
        "sweep's trial length on N fresh seeds (run_params.seed = data.seed = 1000 + i), one CPU each on Ray, and "
        "compared per seed with the defaults. Writes confirm.json and confirm.md into the sweep directory; "
        "hyco export then writes the confirmed winner, or the defaults. A rerun skips finished runs.")
    confirm.add_argument("sweep_dir", help="sweep directory (<storage_path>/<name>)")
    confirm.add_argument("--top", type=int, default=3, help="settings to confirm: the K best complete trials (default 3)")
    confirm.add_argument("--seeds", type=int, default=5, help="fresh seeds per setting, >= 2 (default 5)")
    confirm.add_argument("--address", help="Ray cluster address (ip:port or auto); default: RAY_ADDRESS, else a new local Ray")
    confirm.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray (default: all)")
    confirm.add_argument("--in-session", action="store_true", help=argparse.SUPPRESS)

    report = sub.add_parser(
        "report", help="a sweep's curves, trials table and Optuna plots; `hyco report A B` compares two sweeps",
        description="hyco report A B also writes compare-B.csv (best metric, param_error, trials, trial-epochs, early-stop "
        "savings per sweep) and compare-B.png (best so far against trial-epochs; each sweep's curves) to --output.")
    report.add_argument("sweep_dirs", nargs="+", metavar="sweep_dir", help="sweep directory (<storage_path>/<name>); "
                        "more than one: the others are compared with the first")
    report.add_argument("-o", "--output", "--out", help="output directory (default <first sweep dir>/report)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # key=value overrides may follow --options too
    if extra and (not hasattr(args, "overrides") or any(a.startswith("-") or "=" not in a for a in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    args.argv, args.console = list(sys.argv[1:] if argv is None else argv), argv is None
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message="Sparse")
    logging.getLogger("Φ-ML").setLevel(logging.WARNING)  # its backend line, twice, on every command
    try:
        return globals()[f"cmd_{args.command}"](args)
    except HycoError as exc:
        print(f"hyco: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, TrainingError) else 2  # 1: the run itself failed (e.g. diverged)
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        print(f"hyco: error: the disk is full writing {exc.filename or 'a file'} ({exc.strerror}): free space, "
              "then run the same command again", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
