"""Does the sweep objective rank trials as parameter identification would? Spearman correlation of
each validation metric with param_error over the trials of a sweep.

    hyco tune search_spaces/burgers_quick.yaml --name objective && \
    python bench/objective_vs_theta.py sweeps/objective

param_error needs theta*, which users do not have: it is never an objective, only the yardstick
here. Reads each trial's ``result.json`` (JSON lines, the last row is what the searcher saw).
Writes bench/results/objective_vs_theta.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import spearmanr

METRICS = ("val_loss", "val_loss_synthetic", "val_loss_physical")
RESULTS = Path(__file__).resolve().parent / "results" / "objective_vs_theta.json"


def last_rows(sweep_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(sweep_dir.glob("**/result.json")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        finite = [r for r in lines if all(isinstance(r.get(k), (int, float)) for k in (*METRICS, "param_error"))]
        if finite:
            rows.append(finite[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = last_rows(args.sweep_dir)
    if len(rows) < 3:
        raise SystemExit(f"{args.sweep_dir}: {len(rows)} trials with results; need >= 3")
    errors = [r["param_error"] for r in rows]
    result = {"sweep": str(args.sweep_dir), "trials": len(rows)}
    for metric in METRICS:
        rho, p = spearmanr([r[metric] for r in rows], errors)
        result[metric] = {"spearman": float(rho), "p": float(p)}
        print(f"{metric:20s} vs param_error: Spearman {rho:+.2f} (p = {p:.3g}, {len(rows)} trials)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
