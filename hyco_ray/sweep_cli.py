"""``hyco tune``, ``hyco export`` and ``hyco report``: registered on the ``hyco`` command.

``hyco_ray.cli`` calls :func:`add_parsers`; Ray is imported inside the commands only.
"""

from __future__ import annotations

import argparse


def cmd_tune(args: argparse.Namespace) -> int:
    from hyco_ray.space import load_space
    from hyco_ray.sweep import debug_run, run_sweep

    spec = load_space(args.space, num_samples=args.num_samples, storage_path=args.storage_path)
    if args.name:
        spec.name = args.name
    if args.debug:
        final = debug_run(spec, run_dir=args.run_dir, seed=args.seed)
        print({k: final[k] for k in ("epoch", spec.metric, "param_error") if k in final})
        return 0
    outcome = run_sweep(spec, address=args.address, resume=args.resume, num_cpus=args.num_cpus)
    print(f"sweep directory: {outcome.experiment_dir} ({outcome.wall_s:.0f} s)")
    if not outcome.finished:
        print(f"sweep interrupted; continue it with: hyco tune {args.space} --resume"
              + (f" --storage-path {args.storage_path}" if args.storage_path else ""))
        return 130
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hyco_ray.analysis import export_best

    path = export_best(args.sweep_dir, args.output, trial_id=args.trial)
    print(f"wrote {path}; run it with: hyco train --config-file {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hyco_ray.analysis import write_report

    files = write_report(args.sweep_dir, args.output)
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tune``, ``export`` and ``report`` on the ``hyco`` command's subparsers."""
    tune = subparsers.add_parser(
        "tune", help="run a Ray Tune sweep (Optuna TPE + ASHA) defined by a search-space file",
        description="Local Ray by default; --address or RAY_ADDRESS joins a cluster (Ray >= 2.59 token "
        "auth: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=...; address 'auto' finds a local one).",
    )
    tune.add_argument("space", help="search-space YAML, e.g. search_spaces/burgers_quick.yaml")
    tune.add_argument("--address", help="Ray cluster address (ip:port or auto); default: RAY_ADDRESS, else local Ray")
    tune.add_argument("--resume", action="store_true", help="continue an interrupted sweep; finished trials are kept")
    tune.add_argument("--debug", action="store_true", help="run one sampled config in-process without Ray")
    tune.add_argument("--storage-path", help="where sweep directories go (overrides the file's storage_path)")
    tune.add_argument("--num-samples", type=int, help="number of trials (overrides the file)")
    tune.add_argument("--name", help="sweep name (overrides the file's name)")
    tune.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray (default: all)")
    tune.add_argument("--run-dir", help="--debug: run directory (default <storage_path>/<name>-debug)")
    tune.add_argument("--seed", type=int, help="--debug: seed of the sampled config (default searcher.seed)")
    tune.set_defaults(func=cmd_tune)

    export = subparsers.add_parser("export", help="write the best trial's full config for hyco train --config-file")
    export.add_argument("sweep_dir", help="sweep directory (<storage_path>/<name>)")
    export.add_argument("-o", "--output", default="best.yaml", help="output YAML (default best.yaml)")
    export.add_argument("--trial", help="export this trial id instead of the best")
    export.set_defaults(func=cmd_export)

    report = subparsers.add_parser("report", help="curves figure, trials table and parameter importances of a sweep")
    report.add_argument("sweep_dir", help="sweep directory (<storage_path>/<name>)")
    report.add_argument("-o", "--output", help="output directory (default <sweep dir>/report)")
    report.set_defaults(func=cmd_report)
