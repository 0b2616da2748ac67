"""Step time and peak memory of a training recipe's model, per objective and setting.

    python benchmarks/training_step.py                       # the CPU recipe: contrastive, laser, laser with
                                                             # activation checkpointing; 4 steps each
    python benchmarks/training_step.py --objectives contrastive laser no_explicit_view --steps 6
    python benchmarks/training_step.py --train-data DIR --objectives laser laser,activation_checkpoint_tokens=1024

An entry of ``--objectives`` is an objective, optionally followed by ``,key=value`` recipe overrides.

Each objective trains in its own subprocess (so its peak resident memory is its own), one after the other on the
same data and seed: one untimed step first (model load, first-call allocations), then ``--steps`` timed optimizer
steps. The script prints seconds per step, peak resident memory, and each objective's step time relative to the
first objective's. Needs ``../shared/data/theoremqa`` for the CPU recipe (``--train-data`` or ``LASER_SHARED_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def worker(args: argparse.Namespace) -> None:
    from laser_integrations.training import LaSERTrainer, build_config
    from laser_integrations.training.arguments import load_yaml
    from laser_integrations.training.process_memory import peak_resident_mb

    values = load_yaml(args.config)
    objective, overrides = parse_variant(args.worker)
    values.update(overrides)
    with tempfile.TemporaryDirectory() as out:
        values.update(objective=objective, train_data=args.train_data, output_dir=out, max_steps=args.steps + 1,
                      save_steps=0, progress_bar=False, overwrite_output_dir=True)  # fmt: skip
        trainer = LaSERTrainer(build_config(values, "benchmark"))
        trainer.train(stop_after_steps=1)  # untimed: loading, first-call allocations
        started = time.perf_counter()
        trainer.train(stop_after_steps=args.steps)
        seconds = (time.perf_counter() - started) / args.steps
    print(json.dumps({"objective": args.worker, "seconds_per_step": seconds, "peak_rss_mb": peak_resident_mb()}))


def parse_variant(entry: str) -> tuple[str, dict]:
    """``"laser,activation_checkpoint_tokens=1024"`` -> ``("laser", {"activation_checkpoint_tokens": 1024})``."""
    import yaml

    name, *settings = entry.split(",")
    overrides = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            msg = f"{entry!r}: write each override as key=value after the objective, e.g. laser,lambda_out=1."
            raise SystemExit(msg)
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("LASER_SHARED_DIR", REPO.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "training" / "cpu_smollm2_theoremqa.yaml"))
    parser.add_argument("--train-data", default=str(shared / "data" / "theoremqa"))
    parser.add_argument("--objectives", nargs="+",
                        default=["contrastive", "laser", "laser,activation_checkpoint_tokens=1024"])
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per objective")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if not Path(args.train_data).exists():
        parser.error(f"{args.train_data} not found; pass --train-data or set LASER_SHARED_DIR.")
    rows = []
    for objective in args.objectives:
        cmd = [sys.executable, __file__, "--worker", objective, "--config", args.config, "--train-data",
               args.train_data, "--steps", str(args.steps)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]["seconds_per_step"]
    print(f"{Path(args.config).name}, {args.steps} timed steps each, torch threads: default")
    width = max(20, *(len(r["objective"]) for r in rows))
    print(f"{'objective':<{width}} {'s/step':>8} {'vs ' + rows[0]['objective'][:12]:>16} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['objective']:<{width}} {r['seconds_per_step']:>8.2f} {r['seconds_per_step'] / base:>15.2f}x "
              f"{r['peak_rss_mb']:>12.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
