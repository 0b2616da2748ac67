"""What the framework components add on top of the encoder plus qdrant-client, measured side by side.

Indexes the same few thousand short documents two (or three) ways, in one process, rounds interleaved:

- ``direct``: ``LaSEREncoder.encode_documents`` + ``QdrantClient.upsert`` (what you would write by hand);
- ``haystack``: ``LaSERDocumentEmbedder`` -> ``DocumentWriter`` into ``open_document_store`` (a Pipeline);
- ``llama-index`` (with ``--llama-index``): ``VectorStoreIndex`` with ``LaSEREmbedding`` on ``open_vector_store``.

All use embedded in-memory Qdrant, the same checkpoint (a random Llama with hidden size 256 and 4 layers, so
encoding costs what it costs for a small real model), batch size 32 and the checkpoint's K. The figure of
merit is each path's time divided by the direct path's in the same round (rounds interleave the paths, so
load from other processes hits them alike); the median over rounds is reported.

Run:
    python benchmarks/integration_overhead.py                  # 2000 documents, 3 rounds, direct vs Haystack
    python benchmarks/integration_overhead.py --llama-index    # and the LlamaIndex path too
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import torch

from laser_integrations import LaSERConfig, LaSEREncoder
from laser_integrations.testing.tiny import build_bpe_tokenizer, tiny_causal_lm

WORDS = (
    "prime number code entropy inequality theorem proof lemma derivative integral product rule relativity "
    "time clock prior likelihood bayes random variable information bound sum length prefix function limit "
    "series converge matrix vector space basis rank kernel graph edge vertex path cycle tree"
).split()


def make_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(8, 20))) for _ in range(n)]


def save_model(folder: Path) -> Path:
    tokenizer = build_bpe_tokenizer()
    model = tiny_causal_lm(
        len(tokenizer), arch="llama", hidden_size=256, intermediate_size=768, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    LaSEREncoder(model, tokenizer, LaSERConfig()).save_pretrained(folder)
    return folder


def run_direct(encoder: LaSEREncoder, texts: list[str], batch_size: int) -> int:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("direct", vectors_config=models.VectorParams(size=encoder.dimension, distance=models.Distance.COSINE))
    vectors = encoder.encode_documents(texts, batch_size=batch_size)
    points = [
        models.PointStruct(id=str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))), vector=vector.tolist(), payload={"content": text})
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    for start in range(0, len(points), 100):
        client.upsert("direct", points[start : start + 100])
    count = client.count("direct").count
    client.close()
    return count


def run_haystack(model: str, texts: list[str], batch_size: int, dimension: int) -> int:
    from haystack import Document, Pipeline
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.types import DuplicatePolicy
    from haystack.utils import ComponentDevice

    from laser_integrations.haystack import LaSERDocumentEmbedder
    from laser_integrations.qdrant import open_document_store

    store = open_document_store(location=":memory:", collection="haystack", embedding_dim=dimension, progress_bar=False)
    pipeline = Pipeline()
    pipeline.add_component(
        "embedder",
        LaSERDocumentEmbedder(model=model, device=ComponentDevice.from_str("cpu"), batch_size=batch_size, progress_bar=False),
    )
    pipeline.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    pipeline.connect("embedder", "writer")
    pipeline.run({"embedder": {"documents": [Document(content=text) for text in texts]}})
    count = store.count_documents()
    store.close()
    return count


def run_llama_index(model: str, texts: list[str], batch_size: int, dimension: int) -> int:
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode

    from laser_integrations.llama_index import LaSEREmbedding
    from laser_integrations.qdrant import open_vector_store

    embed_model = LaSEREmbedding(model, device="cpu", embed_batch_size=batch_size)
    store = open_vector_store(location=":memory:", collection="llama", embedding_dim=dimension)
    nodes = [TextNode(text=text, id_=str(uuid.uuid5(uuid.NAMESPACE_URL, str(i)))) for i, text in enumerate(texts)]
    VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model)
    count = store.client.count("llama").count
    store.client.close()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="number of documents (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per path (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--llama-index", action="store_true", help="also time the LlamaIndex path")
    args = parser.parse_args(argv)

    texts = make_corpus(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        model = str(save_model(Path(tmp) / "bench-model"))
        direct_encoder = LaSEREncoder.from_pretrained(model, device="cpu")
        dimension = direct_encoder.dimension
        paths = {
            "direct": lambda t: run_direct(direct_encoder, t, args.batch_size),
            "haystack": lambda t: run_haystack(model, t, args.batch_size, dimension),
        }
        if args.llama_index:
            paths["llama-index"] = lambda t: run_llama_index(model, t, args.batch_size, dimension)
        for run in paths.values():  # warm-up: imports, model loads, first-call allocations
            run(texts[:64])
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, run in paths.items():  # interleaved, so machine noise hits every path alike
                start = time.perf_counter()
                count = run(texts)
                times[name].append(time.perf_counter() - start)
                print(f"round {len(times[name])}: {name} {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
                if count != len(texts):
                    print(f"{name} stored {count} of {len(texts)} documents", file=sys.stderr)
                    return 1

    print(
        f"{args.docs} documents, {args.rounds} rounds, batch size {args.batch_size}, CPU threads "
        f"{torch.get_num_threads()}, model: random Llama hidden 256 x 4 layers, K={LaSERConfig().num_thinking_steps}"
    )
    print(f"{'path':<12} {'median s':>9} {'docs/s':>8} {'vs direct':>10}   per-round ratios")
    for name, values in times.items():
        median = statistics.median(values)
        ratios = [v / d for v, d in zip(values, times["direct"], strict=True)]
        shown = " ".join(f"{r:.3f}" for r in ratios)
        print(f"{name:<12} {median:>9.2f} {args.docs / median:>8.0f} {statistics.median(ratios):>9.3f}x   {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
