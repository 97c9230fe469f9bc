"""How long must a shipped space's trial be? Train its defaults on a few seeds and watch the objective settle.

    nice -n 10 python bench/trial_length.py [--space burgers_quick] [--epochs 24] [--seeds 3] [--window 4]

The base config with the space's fixed overrides (nothing sampled: the sweep's defaults trial) trains
``--epochs`` epochs on seeds 2000.. (``run_params.seed = data.seed``, 1 torch thread, one after the
other). The learning rate is constant by default, so epoch E of this run is the last epoch of an
E-epoch trial. Per epoch: the objective (val_loss) on each seed, its seed spread (coefficient of
variation) and the largest relative change over the last ``--window`` epochs (median over seeds).
S has *settled* at the first epoch E whose change over the window before it is within the seed
spread at E: a trial of E epochs then ranks settings, not how far a transient has got.

Writes ``bench/results/trial_length_<space>.json`` (every seed's curve, the table, the settled epoch
and the seconds per epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


def curve(space: str, epochs: int, seed: int, work: Path) -> tuple[list[float], float]:
    """The defaults' val_loss per epoch at ``seed`` and the seconds per epoch."""
    from hyco.config import load_config
    from hyco.run import train_run
    from hyco_ray.core.space import load_space

    spec = load_space(ROOT / "search_spaces" / f"{space}.yaml")
    overrides = [o for o in spec.trial_overrides({}, threads=1) if not o.startswith("data.cache_dir")]
    cfg = load_config(spec.base, [*overrides, f"trainer_params.epochs={epochs}", f"run_params.seed={seed}",
                                  f"data.seed={seed}", f"data.cache_dir={work / 'cache'}"])
    tic = time.perf_counter()
    train_run(cfg, work / f"seed_{seed}", progress=False)
    wall = time.perf_counter() - tic
    rows = [json.loads(line) for line in (work / f"seed_{seed}" / "metrics.jsonl").read_text().splitlines()]
    return [float(r["val_loss"]) for r in rows], wall / epochs


def analyse(curves: dict[int, list[float]], window: int) -> tuple[list[dict], int | None]:
    table, settled = [], None
    epochs = len(next(iter(curves.values())))
    for e in range(epochs):
        values = [c[e] for c in curves.values()]
        cv = statistics.stdev(values) / statistics.mean(values)
        change = math.nan
        if e >= window:
            change = statistics.median(max(abs(c[j] / c[e] - 1) for j in range(e - window, e)) for c in curves.values())
            if settled is None and change <= cv:
                settled = e + 1
        table.append({"epoch": e + 1, "mean": statistics.mean(values), "cv": cv, "change_over_window": change})
    return table, settled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="burgers_quick")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--window", type=int, default=4)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    started, tic = datetime.now(timezone.utc), time.perf_counter()
    curves, per_epoch = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(2000, 2000 + args.seeds):
            curves[seed], s = curve(args.space, args.epochs, seed, Path(tmp))
            per_epoch.append(s)
            print(f"seed {seed}: {s:.2f} s/epoch; val_loss " + " ".join(f"{v:.3g}" for v in curves[seed]), flush=True)
    table, settled = analyse(curves, args.window)
    for row in table:
        print(f"epoch {row['epoch']:3d}: mean {row['mean']:.4g} seed cv {row['cv']:.3f} "
              f"change over last {args.window} {row['change_over_window']:.3f}")
    print(f"settled at epoch {settled}")
    doc = {"space": args.space, "epochs": args.epochs, "seeds": list(curves), "window": args.window,
           "curves": {str(k): v for k, v in curves.items()}, "table": table, "settled_epoch": settled,
           "seconds_per_epoch": statistics.mean(per_epoch), "wall_s": round(time.perf_counter() - tic),
           "started": started.isoformat(timespec="seconds"), "load": os.getloadavg(),
           "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"}
    out = ROOT / "bench" / "results" / f"trial_length_{args.space}.json"
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
