"""How well each candidate teacher embedding ranks the positives before any training (issue 6's diagnostic).

For the TheoremQA training questions that have a rationale, embeds the question (the student at K=1 and K=3),
the rationale alone as a query, and the explicit view in each layout (``explicit_layout: paper``, read at EOS;
``in_prompt``, read where the latent view reads ``h_1``), then scores them against the questions' theorems.
A teacher that ranks no better than the question gives distillation nothing to teach; one that ranks at chance,
with every embedding alike (high mean pairwise cosine), teaches noise.

Run:
    python training/teacher_probe.py                          # SmolLM2-135M-Instruct, offline
    python training/teacher_probe.py --model runs/study/recipe-s42/final
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from laser_integrations import LaSEREncoder
from laser_integrations.testing import shared_dir
from laser_integrations.training.data import load_training_data, tokenize_explicit_view
from laser_integrations.training.model import explicit_view


def scores(name: str, queries: np.ndarray, docs: np.ndarray, gold: np.ndarray, rng: np.random.Generator) -> str:
    s = queries @ docs.T
    rank = (s > s[np.arange(len(gold)), gold][:, None]).sum(1)
    in_batch = []
    for _ in range(500):  # batches of 8 questions and their 8 theorems, as in training
        b = rng.choice(len(gold), 8, replace=False)
        in_batch.append((s[b][:, gold[b]].argmax(1) == np.arange(8)).mean())
    cos = queries @ queries.T
    off_diagonal = cos[~np.eye(len(queries), dtype=bool)].mean()
    return f"| {name} | {(rank == 0).mean():.3f} | {(1 / (rank + 1)).mean():.3f} | {np.mean(in_batch):.3f} | {off_diagonal:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-offline")
    parser.add_argument("--shared", type=Path, default=shared_dir(), help="folder holding data/theoremqa")
    parser.add_argument("--explicit-max-length", type=int, default=384)
    args = parser.parse_args()
    if args.shared is None:
        parser.error("the shared assets folder was not found; pass --shared or set LASER_SHARED_DIR")
    enc = LaSEREncoder.from_pretrained(args.model, device="cpu", dtype=torch.float32)
    examples = [e for e in load_training_data(args.shared / "data" / "theoremqa", split="train")[0] if e.reasoning]
    theorems = sorted({e.positives[0] for e in examples})
    gold = np.array([theorems.index(e.positives[0]) for e in examples])
    docs = {k: enc.encode_documents(theorems, num_thinking_steps=k, show_progress=False) for k in (1, 3)}
    questions = [e.query for e in examples]
    rows = [
        ("question, K=1 (the student at K=1)", enc.encode_queries(questions, num_thinking_steps=1, show_progress=False), 1),
        ("question, K=3 (the student at K=3)", enc.encode_queries(questions, num_thinking_steps=3, show_progress=False), 3),
        ("rationale alone as the query, K=1",
         enc.encode_queries([e.reasoning for e in examples], num_thinking_steps=1, show_progress=False), 1),
    ]  # fmt: skip
    for layout in ("paper", "in_prompt"):
        states = []
        with torch.inference_mode():
            for e in examples:
                view = tokenize_explicit_view(enc.formatter, e.query, e.reasoning, None, layout=layout,
                                              max_length=args.explicit_max_length, targets="text_spans",
                                              eos_in_budget=True)  # fmt: skip
                ids = torch.tensor([view.input_ids])
                states.append(explicit_view(enc.model, ids, torch.ones_like(ids))[0, -1].float())
        v_star = F.normalize(torch.stack(states), dim=-1).numpy()
        rows.append((f"explicit view, explicit_layout: {layout}", v_star, 1))
    rng = np.random.default_rng(0)
    print(f"{args.model}: {len(examples)} training questions with a rationale, {len(theorems)} theorems")
    print("| embedding | top-1 over all theorems | MRR | top-1 in a batch of 8 | mean pairwise cosine |")
    print("|---|---:|---:|---:|---:|")
    for name, queries, k in rows:
        print(scores(name, queries, docs[k], gold, rng))


if __name__ == "__main__":
    main()
