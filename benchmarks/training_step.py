"""Step time and peak memory of a training recipe's model, per objective and setting.

    python benchmarks/training_step.py                       # the CPU recipe: contrastive, laser, laser with
                                                             # glibc's own malloc threshold; 4 steps each
    python benchmarks/training_step.py --objectives contrastive laser no_explicit_view --steps 6
    python benchmarks/training_step.py --train-data DIR --objectives laser laser,activation_checkpoint_tokens=0
    python benchmarks/training_step.py --train-data DIR --objectives laser laser,malloc_mmap_threshold=0
    python benchmarks/training_step.py --objectives laser --heap-stats  # where the resident peak sits in malloc

An entry of ``--objectives`` is an objective, optionally followed by ``,key=value`` recipe overrides; every other
setting is the recipe's own. The header prints the recipe's memory settings, and an override that only repeats the
recipe's value is reported on stderr: the CPU recipe already sets ``activation_checkpoint_tokens: 1024`` and
``malloc_mmap_threshold: 1048576``, so compare against ``...,activation_checkpoint_tokens=0`` and
``...,malloc_mmap_threshold=0``.

Each objective trains in its own subprocess (so its peak resident memory is its own), one after the other on the
same data and seed: one untimed step first (model load, first-call allocations), then ``--steps`` timed optimizer
steps. The script prints seconds per step, peak resident memory (and the peak while loading the data and the
model, before the first step), and each objective's step time relative to the first objective's. Needs
``../shared/data/theoremqa`` for the CPU recipe (``--train-data`` or ``LASER_SHARED_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sample_heap(every_s: float = 0.2) -> tuple[list[dict], threading.Event]:
    """Sample resident memory and glibc's heap account from a thread until the returned event is set."""
    from laser_integrations.training.process_memory import malloc_heap_mb, resident_mb

    samples: list[dict] = []
    done = threading.Event()

    def run() -> None:
        while not done.wait(every_s):
            samples.append({"rss": resident_mb() or 0.0, **(malloc_heap_mb() or {})})

    threading.Thread(target=run, daemon=True).start()
    return samples, done


def worker(args: argparse.Namespace) -> None:
    from laser_integrations.training import LaSERTrainer, build_config
    from laser_integrations.training.arguments import load_yaml
    from laser_integrations.training.process_memory import peak_resident_mb

    samples, done = sample_heap() if args.heap_stats else ([], threading.Event())
    values = load_yaml(args.config)
    objective, overrides = parse_variant(args.worker)
    values.update(overrides)
    with tempfile.TemporaryDirectory() as out:
        values.update(objective=objective, train_data=args.train_data, output_dir=out, max_steps=args.steps + 1,
                      save_steps=0, progress_bar=False, overwrite_output_dir=True)  # fmt: skip
        trainer = LaSERTrainer(build_config(values, "benchmark"))
        trainer.setup()  # data and model: its peak alone says whether loading or training sets the run's peak
        setup_peak_mb = peak_resident_mb()
        trainer.train(stop_after_steps=1)  # untimed: first-call allocations
        started = time.perf_counter()
        trainer.train(stop_after_steps=args.steps)
        seconds = (time.perf_counter() - started) / args.steps
    done.set()
    row = {"objective": args.worker, "seconds_per_step": seconds, "peak_rss_mb": peak_resident_mb(),
           "setup_peak_rss_mb": setup_peak_mb}  # fmt: skip
    if samples:  # glibc's account at the sample with the most resident memory
        row["at_peak"] = max(samples, key=lambda sample: sample["rss"])
    print(json.dumps(row))


def parse_variant(entry: str) -> tuple[str, dict]:
    """``"laser,activation_checkpoint_tokens=1024"`` -> ``("laser", {"activation_checkpoint_tokens": 1024})``."""
    import yaml

    name, *settings = entry.split(",")
    overrides = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            msg = f"{entry!r}: write each override as key=value after the objective, e.g. laser,lambda_out=1."
            raise ValueError(msg)
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def yaml_values(config: str) -> dict:
    """The recipe's own settings (this process does not import torch, so plain YAML rather than ``load_yaml``)."""
    import yaml

    return yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}


def recipe_memory_settings(values: dict) -> str:
    """The recipe's settings that change a step's memory and time, as ``key=value`` (0, the trainer's default, where
    the recipe is silent)."""
    keys = ("activation_checkpoint_tokens", "malloc_mmap_threshold")
    return ", ".join(f"{key}={values.get(key, 0)}" for key in keys)


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("LASER_SHARED_DIR", REPO.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "training" / "cpu_smollm2_theoremqa.yaml"))
    parser.add_argument("--train-data", default=str(shared / "data" / "theoremqa"))
    parser.add_argument("--objectives", nargs="+",
                        default=["contrastive", "laser", "laser,malloc_mmap_threshold=0"])
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per objective")
    parser.add_argument("--heap-stats", action="store_true",
                        help="also sample glibc's heap every 0.2 s (Linux): at the resident peak, the heap, its freed "
                        "part and the blocks mapped alone; the sampler walks malloc's free lists, so steps run slower")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if not Path(args.train_data).exists():
        parser.error(f"{args.train_data} not found; pass --train-data or set LASER_SHARED_DIR.")
    recipe = yaml_values(args.config)
    for entry in args.objectives:
        try:
            _, overrides = parse_variant(entry)
        except ValueError as e:
            parser.error(str(e))
        for key, value in overrides.items():
            if key in recipe and recipe[key] == value:  # such a row measures the recipe again
                print(f"note: {entry}: {Path(args.config).name} already sets {key}: {value}, so this override changes "
                      "nothing", file=sys.stderr)  # fmt: skip
    rows = []
    for objective in args.objectives:
        cmd = [sys.executable, __file__, "--worker", objective, "--config", args.config, "--train-data",
               args.train_data, "--steps", str(args.steps)]  # fmt: skip
        cmd += ["--heap-stats"] if args.heap_stats else []
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]["seconds_per_step"]
    print(f"{Path(args.config).name} ({recipe_memory_settings(recipe)} unless a row sets them), "
          f"{args.steps} timed steps each, torch threads: default")
    width = max(20, *(len(r["objective"]) for r in rows))
    heap = "  heap / of it freed / mapped alone, MB, at the resident peak" if args.heap_stats else ""
    print(f"{'objective':<{width}} {'s/step':>8} {'vs first row':>16} {'peak RSS MB':>12} "
          f"{'of loading':>10}{heap}")  # fmt: skip
    for r in rows:
        line = (f"{r['objective']:<{width}} {r['seconds_per_step']:>8.2f} {r['seconds_per_step'] / base:>15.2f}x "
                f"{r['peak_rss_mb']:>12.0f} {r['setup_peak_rss_mb'] or 0:>10.0f}")  # fmt: skip
        at = r.get("at_peak", {})
        if "heap" in at:
            line += f"  {at['heap']:>6.0f} / {at['heap_free']:>6.0f} / {at['mapped']:>6.0f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
