"""Retrieval quality at several max lengths, side by side in one process (issue 23: 512 against the official 8192).

Only texts longer than the smallest budget change with the budget, so every text is embedded once at the
smallest budget and only the longer ones again at each larger budget; rankings and scores then come from the
same code as ``laser eval`` (``exact_search``, ``score_run``).

    python benchmarks/max_length.py --model runs/cpu-smollm2-laser/final --data ../shared/data/theoremqa \
        --split dev --max-lengths 512 8192 --num-thinking-steps 1 3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from laser_integrations.encoder import LaSEREncoder
from laser_integrations.evaluation.data import load_beir
from laser_integrations.evaluation.metrics import score_run
from laser_integrations.evaluation.run import drop_excluded
from laser_integrations.evaluation.search import exact_search
from laser_integrations.formatting import Formatter

METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="BEIR folder")
    p.add_argument("--split", default="dev")
    p.add_argument("--max-lengths", type=int, nargs="+", default=[512, 8192])
    p.add_argument("--num-thinking-steps", type=int, nargs="+", default=[1, 3])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--output", help="write the scores (and per-query nDCG@10) as JSON here")
    args = p.parse_args()

    start = time.perf_counter()
    enc = LaSEREncoder.from_pretrained(args.model)
    ds = load_beir(args.data, args.split)
    doc_ids, qids = list(ds.corpus), list(ds.queries)
    texts = {"document": [ds.corpus[d] for d in doc_ids], "query": [ds.queries[q] for q in qids]}
    uncut = Formatter(enc.tokenizer, enc.config.replace(query_max_length=10**9, document_max_length=10**9))
    lengths = {kind: np.array([len(ids) for ids in uncut.tokenize(t, kind, ds.instruction if kind == "query" else None)[0]])
               for kind, t in texts.items()}  # fmt: skip
    budgets, ks = sorted(set(args.max_lengths)), sorted(set(args.num_thinking_steps))
    emb: dict[int, dict[str, dict[int, np.ndarray]]] = {}
    for b in budgets:
        emb[b] = {}
        for kind, items in texts.items():
            # The smallest budget embeds everything; a larger one only the texts the smaller ones cut.
            rows = list(range(len(items))) if b == budgets[0] else [i for i in range(len(items)) if lengths[kind][i] > budgets[0]]
            out = {k: emb[budgets[0]][kind][k].copy() for k in ks} if b != budgets[0] else None
            part = enc.encode_each_k([items[i] for i in rows], ks, kind=kind, instruction=ds.instruction,
                                     batch_size=args.batch_size, max_length=b) if rows else {}  # fmt: skip
            if out is None:
                out = part
            else:
                for k in ks:
                    if rows:
                        out[k][rows] = part[k]
            emb[b][kind] = out
            print(f"budget {b}: embedded {len(rows)} {kind}s ({time.perf_counter() - start:.0f} s)", flush=True)
    results = {}
    print(f"\n{args.model} on {args.data} {args.split}: {len(doc_ids)} documents, {len(qids)} queries")
    print("| max length | K | documents cut | queries cut | " + " | ".join(METRICS) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * len(METRICS))
    for b in budgets:
        for k in ks:
            rankings = exact_search(emb[b]["query"][k], emb[b]["document"][k], doc_ids, 100)
            run = drop_excluded(rankings, qids, ds.excluded, 100)
            scores = score_run({q: ds.qrels[q] for q in qids}, run, METRICS)
            cut_d, cut_q = int((lengths["document"] > b).sum()), int((lengths["query"] > b).sum())
            results[f"{b}/K={k}"] = {"max_length": b, "k": k, "documents_cut": cut_d, "queries_cut": cut_q,
                                     **scores.aggregate, "per_query_ndcg@10": scores.per_query["ndcg@10"]}  # fmt: skip
            print(f"| {b} | {k} | {cut_d} | {cut_q} | " + " | ".join(f"{scores.aggregate[m]:.4f}" for m in METRICS) + " |")
    gold_long = sum(any(lengths["document"][doc_ids.index(d)] > budgets[0] for d in ds.qrels[q]) for q in qids)
    print(f"\n{gold_long} of {len(qids)} queries have a relevant document longer than {budgets[0]} tokens; "
          f"wall time {time.perf_counter() - start:.0f} s")  # fmt: skip
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "data": args.data, "split": args.split, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
