"""Trajectory targets per rationale under each rule (issue 23): the official standalone-separator-token rule
against the project's text segments, for the training rationales of a BEIR folder.

    python training/segment_stats.py --data ../shared/data/theoremqa
"""

from __future__ import annotations

import argparse

import numpy as np
from transformers import AutoTokenizer

from laser_integrations.config import LaSERConfig
from laser_integrations.formatting import Formatter
from laser_integrations.offline import SMOLLM2_LASER_CONFIG, smollm2_path
from laser_integrations.testing.tiny import shared_dir
from laser_integrations.training.data import load_training_data, tokenize_explicit_view


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train")
    args = p.parse_args()
    examples, _ = load_training_data(args.data, split=args.split, missing_reasoning="skip_explicit")
    examples = [e for e in examples if e.reasoning]
    smollm2 = AutoTokenizer.from_pretrained(str(smollm2_path().parent), gguf_file=smollm2_path().name)
    qwen3 = AutoTokenizer.from_pretrained(shared_dir() / "tokenizers" / "qwen3")
    setups = [("SmolLM2 (CPU recipe)", smollm2, SMOLLM2_LASER_CONFIG, "in_prompt", 384),
              ("Qwen3 (paper)", qwen3, LaSERConfig(), "paper", 1024)]  # fmt: skip
    print(f"{len(examples)} rationales of {args.data} {args.split}")
    # The last column counts the rationales whose explicit view (token ids and target positions) is the same under
    # both rules: where all are, training with either rule is the same computation.
    print("| tokenizer | layout | targets | mean targets per rationale | rationales with one target | same view "
          "under both rules |\n|---|---|---|---:|---:|---:|")  # fmt: skip
    for name, tok, config, layout, budget in setups:
        formatter = Formatter(tok, config)
        views = {rule: [tokenize_explicit_view(formatter, e.query, e.reasoning, e.instruction, layout=layout,
                                               max_length=budget, targets=rule) for e in examples]
                 for rule in ("newline_token", "text_spans")}  # fmt: skip
        same = sum(a == b for a, b in zip(*views.values()))
        for rule, built in views.items():
            m = np.array([len(v.segment_ends) for v in built])
            print(f"| {name} | {layout} | {rule} | {m.mean():.2f} | {(m == 1).sum()} | {same} |")


if __name__ == "__main__":
    main()
