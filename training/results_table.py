"""Print the CPU recipe's results (runs/cpu-results.jsonl + wall times from runs/cpu-recipe.log) as a Markdown table.

    python training/results_table.py            # paste into training/RESULTS.md
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path


def main(runs: str = "runs") -> None:
    results = Path(runs) / "cpu-results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.is_file() else []
    print("| run | K | nDCG@10 | Recall@10 | MRR@10 | eval seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['num_thinking_steps']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
              f"{r['mrr@10']:.4f} | {r['seconds']} |")  # fmt: skip
    log = Path(runs) / "cpu-recipe.log"
    if log.is_file():
        stamps = [line.split(" ", 1) for line in log.read_text().splitlines() if line.strip()]
        print("\n| stage | started (UTC) | wall minutes |")
        print("|---|---|---|")
        for (t0, name), nxt in zip(stamps, [*stamps[1:], None]):
            minutes = ""
            if nxt is not None:
                delta = datetime.fromisoformat(nxt[0].rstrip("Z")) - datetime.fromisoformat(t0.rstrip("Z"))
                minutes = f"{delta.total_seconds() / 60:.1f}"
            print(f"| {name} | {t0} | {minutes} |")
    for name in ("cpu-smollm2-contrastive", "cpu-smollm2-laser"):
        metrics = Path(runs) / name / "metrics.jsonl"
        if metrics.is_file():
            last = json.loads(metrics.read_text().splitlines()[-1])
            print(f"\n{name}: last logged step {last['step']}, loss {last['loss']:.4f}, "
                  f"{last['seconds']:.0f} s of training")  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
