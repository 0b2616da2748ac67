"""Where a training step's memory goes: the activations autograd keeps, per view, for a recipe's real batches.

    python benchmarks/training_memory.py                          # the CPU recipe on the set's rationales
    python benchmarks/training_memory.py --train-data DIR         # e.g. a folder whose reasoning.jsonl is the
                                                                  # set's reasoning-llm.jsonl (a rationale each)
    python benchmarks/training_memory.py --activation-checkpoint-tokens 1024

For each of the first ``--batches`` batches of the recipe (its collator, its seed) the script runs the forward
pass of every view under ``torch.autograd.graph.saved_tensors_hooks`` and adds up the bytes autograd keeps for
backward: the memory a step holds at the end of its forward pass, beyond the weights. No backward pass runs, so
this is cheap next to a training step, and exact (it counts tensors, not the allocator's pages). Peak resident
memory of a real step is this plus the weights, the backward pass's temporaries and the allocator's slack; see
``benchmarks/training_step.py`` for that figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("LASER_SHARED_DIR", REPO.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "training" / "cpu_smollm2_theoremqa.yaml"))
    parser.add_argument("--train-data", default=str(shared / "data" / "theoremqa"))
    parser.add_argument("--batches", type=int, default=3, help="batches to measure (the recipe's first ones)")
    parser.add_argument("--activation-checkpoint-tokens", type=int, default=None,
                        help="override the recipe's activation_checkpoint_tokens (0 = off)")  # fmt: skip
    args = parser.parse_args(argv)
    if not Path(args.train_data).exists():
        parser.error(f"{args.train_data} not found; pass --train-data or set LASER_SHARED_DIR.")

    import torch

    from laser_integrations.training import LaSERTrainer, build_config
    from laser_integrations.training.arguments import load_yaml

    values = load_yaml(args.config)
    if args.activation_checkpoint_tokens is not None:
        values["activation_checkpoint_tokens"] = args.activation_checkpoint_tokens
    with tempfile.TemporaryDirectory() as out:
        values.update(train_data=args.train_data, output_dir=out, save_steps=0, progress_bar=False,
                      overwrite_output_dir=True)  # fmt: skip
        trainer = LaSERTrainer(build_config(values, "benchmark"))
        trainer.setup()
    dual = trainer.dual
    weights_mb = sum(p.numel() * p.element_size() for p in trainer.backbone.parameters()) / MB
    saved = {"queries": 0, "documents": 0, "explicit": 0}
    current = ["queries"]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[current[0]] += t.numel() * t.element_size()
        return t

    # Attribute each saved tensor to the view whose forward pass runs (the loss terms keep a few kilobytes).
    original_latent, original_teacher = dual._latent, dual._teacher_states

    def latent(ids, mask):
        current[0] = "queries" if ids is batch["query_ids"] else "documents"
        return original_latent(ids, mask)

    def teacher(*a):
        current[0] = "explicit"
        return original_teacher(*a)

    dual._latent, dual._teacher_states = latent, teacher
    rows = []
    try:
        for step in range(args.batches):
            indices, epoch = trainer._indices(step, 0)
            batch = trainer.collator(indices, epoch, torch.device("cpu"))
            for key in saved:
                saved[key] = 0
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                dual(batch, distill_scale=1.0)
            tokens = {
                "queries": int(batch["query_ids"].numel()),
                "documents": int(batch["doc_ids"].numel()),
                "explicit": int(batch["explicit_ids"].numel()) if batch["explicit_rows"].numel() else 0,
            }
            rows.append((step, tokens, dict(saved), int(batch["explicit_rows"].numel())))
    finally:
        dual._latent, dual._teacher_states = original_latent, original_teacher

    ck = values.get("activation_checkpoint_tokens", 0)
    print(f"{Path(args.config).name} on {args.train_data}; activation_checkpoint_tokens={ck}; "
          f"weights {weights_mb:.0f} MB")  # fmt: skip
    print(f"{'batch':>5} {'rationales':>10} | {'padded tokens (q / d / e)':>26} | {'kept MB (q / d / e)':>24} "
          f"{'total MB':>9} {'KB/token':>9}")  # fmt: skip
    for step, tokens, kept, rationales in rows:
        total_tokens = sum(tokens.values())
        total = sum(kept.values())
        print(f"{step:>5} {rationales:>10} | {tokens['queries']:>8} / {tokens['documents']:>6} / "
              f"{tokens['explicit']:>6} | {kept['queries'] / MB:>7.0f} / {kept['documents'] / MB:>6.0f} / "
              f"{kept['explicit'] / MB:>6.0f} {total / MB:>9.0f} {total / 1024 / max(total_tokens, 1):>9.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
