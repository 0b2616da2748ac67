"""How far bf16 embeddings drift from fp32 on a real model (SmolLM2-135M, offline), on TheoremQA texts.

The CPU default dtype is bf16 only where it is both faster and within 1e-2 cosine distance of fp32.

    python benchmarks/cpu_bf16_precision.py [--shared ../shared] [--n 48]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from laser_integrations import LaSEREncoder
from laser_integrations.offline import SMOLLM2_ALIAS
from laser_integrations.testing import shared_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=shared_dir(), help="folder holding data/theoremqa")
    parser.add_argument("--n", type=int, default=48, help="documents and queries to embed")
    args = parser.parse_args()
    if args.shared is None:
        parser.error("the shared assets folder was not found; pass --shared or set LASER_SHARED_DIR")
    data = args.shared / "data" / "theoremqa"
    read = lambda name: [json.loads(line)["text"] for line in (data / name).open(encoding="utf-8")][: args.n]
    corpus, queries = read("corpus.jsonl"), read("queries.jsonl")

    encoder = LaSEREncoder.from_pretrained(SMOLLM2_ALIAS, device="cpu", dtype="float32")
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        encoder.model.to(dtype)
        start = time.perf_counter()
        docs = encoder.encode_documents(corpus, batch_size=16)
        qs = encoder.encode_queries(queries, batch_size=16)
        results[dtype] = (docs, qs, time.perf_counter() - start)
        print(f"{dtype}: {results[dtype][2]:.1f} s for {len(corpus)} documents + {len(queries)} queries")
    (d32, q32, t32), (d16, q16, t16) = results[torch.float32], results[torch.bfloat16]
    for name, a, b in (("documents", d32, d16), ("queries", q32, q16)):
        dist = 1 - (a * b).sum(1)
        print(f"{name}: cosine distance bf16 vs fp32 max {dist.max():.2e}, mean {dist.mean():.2e}")
    agree = ((q32 @ d32.T).argmax(1) == (q16 @ d16.T).argmax(1)).mean()
    print(f"top-1 document agreement: {agree:.2f}; bf16/fp32 time {t16 / t32:.2f}x")


if __name__ == "__main__":
    main()
