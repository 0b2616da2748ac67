"""`laser index` + `laser search` on Qdrant Edge at scale, through the command's own code paths.

A tiny random-weight LaSER model (``laser_integrations.testing.tiny``: one layer, hidden size = ``--dim``, an MLP
of 64) encodes a synthetic corpus of 3-6 word texts fast, so the run measures the store: ``laser index`` (its chunks, content hashes, deferred
HNSW build and the one optimize at the end, with the settings a new Edge folder gets) runs in a child process
whose peak RSS is read from ``getrusage(RUSAGE_CHILDREN)``; then the queries are embedded by the same model and
searched through the store ``laser search`` opens (read-only, with its ``search_params``), timed one at a time,
and compared with exact search over the stored vectors (numpy). One real ``laser search`` call checks the CLI.
Then the same folder is searched through each framework's retriever, query text in, the query embedded by the
retriever itself (so latency includes one query embedding): Haystack's ``LaSERRetriever`` over
``open_document_store`` and LlamaIndex's ``VectorStoreIndex.from_vector_store(open_vector_store(...))`` retriever
(``QdrantEdgeVectorStore`` reading the Haystack layout), both with ``laser search``'s search settings; each row
gives p50 and recall@10 against the exact top 10, and how many top-10 id lists the two frameworks share. Each
framework is also timed with the query embedded beforehand (``QdrantEdgeEmbeddingRetriever``; LlamaIndex's
retriever given a ``QueryBundle`` with the embedding): the framework and the store without the model.

Run (10^6 points take 15-25 minutes on 2 cores; nice it on a shared machine, ``--tmp /dev/shm`` if it has room for ~3 GB):
    nice -n 10 python benchmarks/edge_million.py --points 1000000 --dim 576 --tmp /dev/shm
    nice -n 10 python benchmarks/edge_million.py --points 1000000 --dim 1024 --tmp /dev/shm
Small check:
    nice -n 10 python benchmarks/edge_million.py --points 20000 --dim 576
Extra ``laser index`` flags go after ``--``: ``... -- --hnsw-m 16 --quantization none``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = 5_000


def write_corpus(path: Path, points: int, seed: int) -> None:
    """``points`` documents of 3-6 random words from a 5,000-word vocabulary (distinct texts, distinct vectors).
    Short texts keep the encoding at a few thousand documents a second on 2 cores, so the store dominates."""
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, points, 10_000):
            n = min(10_000, points - start)
            lengths = rng.integers(3, 7, size=n)
            words = rng.integers(0, WORDS, size=(n, 6))
            for i in range(n):
                text = " ".join(f"w{w}" for w in words[i, : lengths[i]])
                f.write(json.dumps({"_id": f"d{start + i}", "text": text}) + "\n")


def build_model(folder: Path, dim: int) -> None:
    from laser_integrations.config import LaSERConfig
    from laser_integrations.encoder import LaSEREncoder
    from laser_integrations.testing.tiny import build_bpe_tokenizer, tiny_causal_lm

    tokenizer = build_bpe_tokenizer()
    # One layer and a small MLP: the embedding's dimension is the hidden size, the cost per token stays small.
    model = tiny_causal_lm(len(tokenizer), hidden_size=dim, intermediate_size=64, num_hidden_layers=1, seed=0)
    config = LaSERConfig(query_template="{text}", document_template="{text}", query_instruction="")
    LaSEREncoder(model, tokenizer, config).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--hnsw-ef", type=int, nargs="+", default=[None], help="search beams (default: laser search's)")
    parser.add_argument("--oversampling", type=float, default=None,
                        help="candidates rescored with the float vectors, x top-k (default: laser search's)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="folder for the corpus, model and store")
    parser.add_argument("--keep", action="store_true", help="keep the folder (its path is printed)")
    parser.add_argument("index_flags", nargs="*", help="extra `laser index` flags, after --")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="edge-million-", dir=args.tmp))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        build_model(root / "model", args.dim)
        write_corpus(root / "corpus.jsonl", args.points, args.seed)
        common = ["--model", str(root / "model"), "--path", str(root / "qdrant"), "--collection", "bench"]
        command = [sys.executable, "-m", "laser_integrations.cli.main", "index", str(root / "corpus.jsonl"), *common,
                   "--chunk-size", "2048", "--batch-size", "256", "--no-progress", *args.index_flags]  # fmt: skip
        print("#", " ".join(command[1:]), flush=True)
        t0 = time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        index_s = time.perf_counter() - t0
        if out.returncode != 0:
            sys.exit(f"laser index failed ({out.returncode}): {out.stderr[-3000:]}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print("#", out.stdout.strip().splitlines()[-1])
        disk_mb = sum(f.stat().st_blocks * 512 for f in (root / "qdrant").rglob("*") if f.is_file()) / 2**20
        rows = measure(args, root, common, index_s, peak_mb, disk_mb)
        probe = subprocess.run([sys.executable, "-m", "laser_integrations.cli.main", "search", "w1 w2 w3", *common,
                                "--top-k", "3"], env=env, capture_output=True, text=True)  # fmt: skip
        print(f"# laser search exit {probe.returncode}: {probe.stdout.strip().splitlines()[:1]}")
        rows += frameworks(args, root, common)
        for row in rows:
            print(json.dumps(row))
    finally:
        if args.keep:
            print(f"# kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def query_texts(args: argparse.Namespace) -> list[str]:
    rng = np.random.default_rng(args.seed + 1)
    return [" ".join(f"w{w}" for w in rng.integers(0, WORDS, size=5)) for _ in range(args.queries)]


def frameworks(args: argparse.Namespace, root: Path, common: list[str]) -> list[dict]:
    """The same collection searched from Haystack (LaSERRetriever) and LlamaIndex (VectorStoreIndex retriever)."""
    from haystack.utils import ComponentDevice
    from llama_index.core import VectorStoreIndex

    from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
    from haystack_integrations.components.retrievers.laser import LaSERRetriever
    from haystack_integrations.components.retrievers.laser_edge import QdrantEdgeEmbeddingRetriever
    from llama_index.core.schema import QueryBundle
    from laser_integrations.cli.main import build_parser
    from laser_integrations.cli._qdrant_args import search_settings
    from laser_integrations.llama_index import LaSEREmbedding
    from laser_integrations.qdrant import open_document_store, open_vector_store

    texts = query_texts(args)
    model = str(root / "model")
    embedder = LaSERTextEmbedder(model=model, progress_bar=False)
    embedder.warm_up()
    vectors = [embedder.run(t)["embedding"] for t in texts]
    truth = exact_top(root, args.dim, np.asarray(vectors, np.float32), args.k)
    flags = ["search", "q", *common]
    settings = search_settings(build_parser(flags).parse_args(flags))  # laser search's defaults on Edge

    def timed(search: object, given: object) -> tuple[list[float], list[list[str]], list[float]]:
        """Latencies and ids of ``search(text)`` and latencies of ``given(text, vector)`` (query pre-embedded)."""
        for t, v in zip(texts[:5], vectors[:5]):
            search(t), given(t, v)  # type: ignore[operator]
        times, ids, pre = [], [], []
        for t, v in zip(texts, vectors, strict=True):
            t0 = time.perf_counter()
            ids.append(search(t))  # type: ignore[operator]
            t1 = time.perf_counter()
            given(t, v)  # type: ignore[operator]
            times.append((t1 - t0) * 1000)
            pre.append((time.perf_counter() - t1) * 1000)
        return times, ids, pre

    store = open_document_store(path=root / "qdrant", collection="bench", embedding_dim=args.dim, read_only=True,
                                progress_bar=False, **settings)  # fmt: skip
    retriever = LaSERRetriever(document_store=store, model=model, device=ComponentDevice.from_str("cpu"), top_k=args.k)
    by_vector = QdrantEdgeEmbeddingRetriever(document_store=store, top_k=args.k)
    try:
        results = {"haystack": timed(lambda t: [d.id for d in retriever.run(query=t)["documents"]],
                                     lambda t, v: by_vector.run(query_embedding=v))}  # fmt: skip
    finally:
        store.close()
    embed = LaSEREmbedding(model, device="cpu")
    vector_store = open_vector_store(path=root / "qdrant", collection="bench", embed_model=embed, **settings)
    try:
        index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed)
        llama = index.as_retriever(similarity_top_k=args.k)
        results["llama_index"] = timed(lambda t: [h.node.node_id for h in llama.retrieve(t)],
                                       lambda t, v: llama.retrieve(QueryBundle(t, embedding=v)))  # fmt: skip
    finally:
        vector_store.close()
    same = sum(a == b for a, b in zip(results["haystack"][1], results["llama_index"][1], strict=True))
    rows = []
    for name, (times, ids, pre) in results.items():
        recall = float(np.mean([len(set(got) & want) / args.k for got, want in zip(ids, truth, strict=True)]))
        row = {"points": args.points, "dim": args.dim, "framework": name, **settings["search_params"],
               "p50_ms": round(float(np.percentile(times, 50)), 2), "p99_ms": round(float(np.percentile(times, 99)), 2),
               "p50_ms_pre_embedded": round(float(np.percentile(pre, 50)), 2),
               "recall_at_10": round(recall, 4), "same_ids_as_haystack": f"{same}/{len(texts)}"}  # fmt: skip
        rows.append(row)
        print(f"| {args.points:,} | {args.dim} | {name} retriever | p50 {row['p50_ms']} ms (query embedding "
              f"included; {row['p50_ms_pre_embedded']} ms pre-embedded) | p99 {row['p99_ms']} ms | recall@10 "
              f"{row['recall_at_10']} | same top-10 as Haystack {same}/{len(texts)} |", flush=True)  # fmt: skip
    return rows


def exact_top(root: Path, dim: int, queries: np.ndarray, k: int) -> list[set[str]]:
    """The exact top-k document ids of each query, from every stored vector (numpy, cosine of unit vectors)."""
    import qdrant_edge as qe

    from laser_integrations.qdrant import open_document_store

    store = open_document_store(path=root / "qdrant", collection="bench", embedding_dim=dim, read_only=True,
                                progress_bar=False)  # fmt: skip
    try:
        shard = store.open()
        ids, vecs, offset = [], [], None
        while True:
            records, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=10_000, with_payload=["id"],
                                                            with_vector=True))  # fmt: skip
            ids += [r.payload["id"] for r in records]
            vecs.append(np.asarray([r.vector for r in records], dtype=np.float32))
            if offset is None:
                break
    finally:
        store.close()
    matrix = np.concatenate(vecs)
    return [{ids[j] for j in np.argpartition(-(matrix @ q), k)[:k]} for q in queries]


def measure(args: argparse.Namespace, root: Path, common: list[str], index_s: float, peak_mb: float,
            disk_mb: float) -> list[dict]:  # fmt: skip
    from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
    from laser_integrations.cli._qdrant_args import EDGE_SEARCH_DEFAULTS
    from laser_integrations.cli.main import build_parser
    from laser_integrations.cli.search import _open_store
    from laser_integrations.qdrant import open_document_store

    texts = query_texts(args)
    embedder = LaSERTextEmbedder(model=str(root / "model"), progress_bar=False)
    embedder.warm_up()
    queries = np.asarray([embedder.run(t)["embedding"] for t in texts], dtype=np.float32)
    print(f"# laser index of {args.points:,} x {args.dim}: {index_s:.1f} s ({args.points / index_s:,.0f} docs/s, "
          f"model included), peak RSS {peak_mb:,.0f} MB, disk {disk_mb:,.0f} MB", flush=True)  # fmt: skip
    truth = exact_top(root, args.dim, queries, args.k)
    rows = []
    for ef in args.hnsw_ef:
        flags = ["search", "q", *common] + ([] if ef is None else ["--hnsw-ef", str(ef)])
        flags += [] if args.oversampling is None else ["--oversampling", str(args.oversampling)]
        store = _open_store(open_document_store, args.dim, build_parser(flags).parse_args(flags))
        try:
            for q in queries[:5]:
                store.query_by_embedding(q.tolist(), top_k=args.k)
            times, recall = [], []
            for q, want in zip(queries, truth, strict=True):
                t0 = time.perf_counter()
                hits = store.query_by_embedding(q.tolist(), top_k=args.k)
                times.append((time.perf_counter() - t0) * 1000)
                recall.append(len({d.id for d in hits} & want) / args.k)
        finally:
            store.close()
        row = {"points": args.points, "dim": args.dim, "hnsw_ef": ef or EDGE_SEARCH_DEFAULTS["hnsw_ef"],
               "oversampling": args.oversampling or EDGE_SEARCH_DEFAULTS["oversampling"],
               "index_s": round(index_s, 1), "docs_per_s": round(args.points / index_s), "peak_rss_mb": round(peak_mb),
               "disk_mb": round(disk_mb), "p50_ms": round(float(np.percentile(times, 50)), 2),
               "p99_ms": round(float(np.percentile(times, 99)), 2), "recall_at_10": round(float(np.mean(recall)), 4)}  # fmt: skip
        rows.append(row)
        print(f"| {args.points:,} | {args.dim} | hnsw_ef={row['hnsw_ef']} oversampling={row['oversampling']} | p50 {row['p50_ms']} ms | p99 {row['p99_ms']} ms "
              f"| recall@10 {row['recall_at_10']} |", flush=True)  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
