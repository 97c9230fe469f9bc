"""The ``hyco`` command: train / data / evaluate (library only) and tune / export / report (Ray).

Ray is imported only by the sweep subcommands, so ``hyco train`` starts fast and debugs easily.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from datetime import datetime
from pathlib import Path

from hyco_ray.sweep_cli import add_parsers


def _load(args: argparse.Namespace):
    from hyco.config import load_config, load_config_file

    if args.config_file:
        overrides = ([args.config] if args.config else []) + args.overrides
        return load_config_file(args.config_file, overrides)
    if not args.config:
        from hyco.config import available_configs

        raise SystemExit(f"hyco: name a config ({', '.join(available_configs())}) or pass --config-file")
    return load_config(args.config, args.overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from hyco.errors import HycoError
    from hyco.run import train_run

    if args.resume and not args.run_dir:
        raise HycoError("--resume needs --run-dir: the run directory to continue")
    cfg = _load(args)
    run_dir = Path(args.run_dir) if args.run_dir else (
        Path(cfg.run_params.output_dir) / f"{cfg.run_params.experiment_name}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    final = train_run(cfg, run_dir, resume=args.resume)
    shown = {k: final[k] for k in ("epoch", "val_loss", "val_loss_physical", "param_error", "theta") if k in final}
    shown.update({k: v for k, v in final.items() if k.startswith("test_")})
    print(json.dumps(shown, indent=2))
    if final.get("time_epoch"):
        print(f"field<->tensor conversion: {100 * final['time_conversion'] / final['time_epoch']:.2f}% of the last epoch")
    print(f"run directory: {run_dir.resolve()}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hyco.data import load_or_simulate
    from hyco.physics import make_problem

    cfg = _load(args)
    problem = make_problem(cfg.model.physical)
    with tqdm(total=cfg.data.num_simulations, desc=f"simulating {problem.name}", unit="sim") as bar:
        trajectories, path, hit = load_or_simulate(problem, cfg.data, progress=bar.update)
    print(f"{'cache hit' if hit else 'simulated'}: {tuple(trajectories.shape)} -> {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hyco.run import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir), indent=2))
    return 0


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="config name (e.g. burgers_hybrid_quick_test) or a YAML path")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer_params.alpha=0.7")
    parser.add_argument("--config-file", help="a resolved config file, e.g. from hyco export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyco", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="one training run in-process, no Ray (the debug run)")
    _add_config_args(train)
    train.add_argument("--run-dir", help="where to write metrics, checkpoints and figures")
    train.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    train.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="simulate and cache the dataset of a config")
    _add_config_args(data)
    data.set_defaults(func=cmd_data)

    evaluate = sub.add_parser("evaluate", help="score a finished run on the test split")
    evaluate.add_argument("run_dir")
    evaluate.set_defaults(func=cmd_evaluate)

    add_parsers(sub)  # tune, export, report
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message="Sparse")
    from hyco.errors import HycoError, TrainingError

    try:
        return args.func(args)
    except TrainingError as exc:  # not a user mistake: the run itself failed (e.g. diverged)
        print(f"hyco: error: {exc}", file=sys.stderr)
        return 1
    except HycoError as exc:
        print(f"hyco: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
