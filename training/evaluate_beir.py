"""Dev-split retrieval quality of a LaSER checkpoint on a BEIR folder: nDCG@10 (and Recall@10, MRR@10) with ranx.

    python training/evaluate_beir.py --model runs/cpu-smollm2-laser/final --data ../shared/data/theoremqa --split dev

Documents are embedded as ``"{title} {text}"`` (the trainer's convention); queries with the checkpoint's
default instruction. Prints one JSON line and, with --output, appends it to a JSONL file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="LaSER checkpoint folder, .gguf file or 'smollm2-135m-offline'")
    parser.add_argument("--data", required=True, help="BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_thinking_steps", type=int, default=None, help="override K of the checkpoint")
    parser.add_argument("--name", default=None, help="label of this run in the output")
    parser.add_argument("--output", default=None, help="JSONL file to append the result to")
    args = parser.parse_args()

    from ranx import Qrels, Run, evaluate

    from laser_integrations import LaSEREncoder
    from laser_integrations.training.data import load_corpus

    started = time.perf_counter()
    overrides = {"num_thinking_steps": args.num_thinking_steps} if args.num_thinking_steps else {}
    # An offline alias loads with its recipe's input format (from_pretrained resolves both).
    encoder = LaSEREncoder.from_pretrained(args.model, device="cpu", **overrides)
    folder = Path(args.data)
    corpus = load_corpus(folder)
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate((folder / "qrels" / f"{args.split}.tsv").read_text(encoding="utf-8").splitlines()):
        if n == 0 and line.startswith("query-id"):
            continue
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    doc_ids, qids = list(corpus), list(qrels)
    d = encoder.encode_documents([corpus[i] for i in doc_ids], batch_size=args.batch_size, show_progress=True)
    q = encoder.encode_queries([queries[i] for i in qids], batch_size=args.batch_size, show_progress=True)
    scores = q @ d.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {qid: {doc_ids[j]: float(scores[r, j]) for j in top[r]} for r, qid in enumerate(qids)}
    metrics = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@10", "mrr@10"])
    result = {"name": args.name or args.model, "model": args.model, "split": args.split, "queries": len(qids),
              "num_thinking_steps": encoder.config.num_thinking_steps,
              **{k: round(float(v), 4) for k, v in metrics.items()},
              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(json.dumps(result))
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
