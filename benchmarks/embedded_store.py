"""qdrant-client's local mode against Qdrant Edge, the two embedded stores, side by side in one run.

For each (points, dimension) the same embedding-like vectors go into both stores in the same batches of 1,000
(payload ``{"text": ...}``), then the same queries are searched one at a time, top-10:

- ``local``: ``QdrantClient(path=...)``, qdrant-client's pure-Python local mode (exact search), the embedded store
  the project uses today;
- ``edge``: a Qdrant Edge shard (``qdrant-edge-py``): the upload first (HNSW off: Edge runs its optimizers only
  when asked), then ``optimize()`` once, which builds the HNSW graph, as Qdrant's bulk-load advice says; the
  search is repeated for each ``--hnsw-ef``.

Figures: ingest points/s (upload plus index build), p50 and p99 query ms, recall@10 against exact search
(computed here with numpy over the same vectors), peak RSS of the store's process and the folder's size on disk.
Each store runs in its own child process so that its peak RSS is its own; the vectors are generated batch by
batch from a seed in each process (never all held at once), so RSS is the store's and one batch's.

The vectors imitate sentence embeddings rather than uniform noise: unit vectors with a shared mean direction and
an anisotropic covariance (eigenvalues falling as k^-0.8 over all dimensions, in a random basis: the
participation ratio is about 80 at dimension 576, most of the variance in a few dozen directions, as in real
embeddings), drawn around loose clusters of 20 points on average (their number grows with the corpus, so every
size has the same local structure). At 10^5 x 576 a query's nearest neighbour has cosine 0.57 on average, its
10th 0.52, a random pair 0.27 (the median), and fewer than half of a query's 10 nearest neighbours share its
cluster: neighbourhoods are crowded, which is what makes approximate search lose recall. Queries come from the
same distribution and are not in the store.

Run (nice it on a shared machine; ``--tmp /dev/shm`` keeps a busy shared disk out of the figures):
    nice -n 10 python benchmarks/embedded_store.py --points 10000 100000 --dims 576 --tmp /dev/shm
    nice -n 10 python benchmarks/embedded_store.py --points 10000 --dims 576 1024 --hnsw-ef 64 128 256
    nice -n 10 python benchmarks/embedded_store.py --million --engines edge    # adds 10^6 (local mode skips it)
    nice -n 10 python benchmarks/embedded_store.py --real --hnsw-ef 16 64      # real LaSER vectors (below)

``--real`` replaces the synthetic vectors with real LaSER ones: the demo corpus (252 passages) embedded by the
shipped demo checkpoint and its questions as the queries (``--real-model``/``--real-data`` take another LaSER
checkpoint and BEIR folder). Edge then builds and searches its HNSW graph however small the corpus
(``--force-hnsw``), so recall@10 measures the graph on the vectors this library makes.

qdrant-client's local mode is skipped above ``--local-max`` points (default 100,000): its exact search is linear
in the points (about 1.6 s a query at 10^6 on 2 cores by extrapolation) and it keeps every vector in Python lists.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from laser_integrations.cli._qdrant_args import INT8_QUANTIZATION

BATCH = 1_000
# --quantization: Qdrant's REST form, as laser_integrations.edge takes it (int8: what `laser index` gives Edge)
QUANTIZATION = {"none": None, "int8": INT8_QUANTIZATION}
POINTS_PER_CLUSTER = 20
SPECTRUM = 0.8  # eigenvalues of the covariance fall as k^-0.8 over all dimensions


@functools.cache
def _basis(dim: int, seed: int, clusters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = np.arange(1, dim + 1) ** -SPECTRUM
    shape = (np.sqrt(scales / scales.sum())[:, None] * rotation.T).astype(np.float32)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) @ shape
    return mean, shape, centres


def vectors(dim: int, start: int, count: int, seed: int, points: int, stream: int = 0) -> np.ndarray:
    """Unit vectors ``start .. start+count`` of a stream (0: the corpus, 1: the queries), reproducible by index.

    ``points`` is the corpus size: it sets the number of clusters, so every size has the same local structure.
    """
    mean, shape, centres = _basis(dim, seed, max(1, points // POINTS_PER_CLUSTER))
    out = np.empty((count, dim), dtype=np.float32)
    for offset in range(0, count, BATCH):
        block = min(BATCH, count - offset)
        rng = np.random.default_rng([seed, stream, (start + offset) // BATCH])
        cluster = rng.integers(0, len(centres), size=block)
        local = rng.standard_normal((block, dim)).astype(np.float32) @ shape
        x = 0.7 * mean + 0.6 * centres[cluster] + local
        out[offset : offset + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


@functools.cache
def _real(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def corpus_block(args: argparse.Namespace, start: int, count: int) -> np.ndarray:
    """Corpus vectors ``start .. start+count``: the real ones of ``--vectors``, or the synthetic stream."""
    if args.vectors:
        return _real(args.vectors)["corpus"][start : start + count]
    return vectors(args.dim, start, count, args.seed, args.n)


def query_block(args: argparse.Namespace) -> np.ndarray:
    if args.vectors:
        return _real(args.vectors)["queries"][: args.queries]
    return vectors(args.dim, 0, args.queries, args.seed, args.n, stream=1)


def embed_real(model: str, data: Path, out: Path, max_length: int | None) -> tuple[int, int, int]:
    """Embed a BEIR folder's corpus (as documents) and its queries with a LaSER checkpoint into ``out`` (.npz).

    Returns (passages, queries, dimension). The vectors are unit length (the encoder normalizes), as the stores'
    cosine expects.
    """
    from laser_integrations.encoder import LaSEREncoder

    def texts(name: str, field: str = "text") -> list[str]:
        rows = [json.loads(line) for line in (data / name).read_text().splitlines() if line.strip()]
        return [(r.get("title", "") + "\n" + r[field]).strip() if name == "corpus.jsonl" else r[field] for r in rows]

    encoder = LaSEREncoder.from_pretrained(model)
    options = {"max_length": max_length} if max_length else {}
    t0 = time.perf_counter()
    corpus = encoder.encode_documents(texts("corpus.jsonl"), show_progress=True, **options)
    queries = encoder.encode_queries(texts("queries.jsonl"), show_progress=True, **options)
    print(f"# embedded {len(corpus)} passages and {len(queries)} queries with {model} in "
          f"{time.perf_counter() - t0:.0f} s (dimension {corpus.shape[1]})")
    partial = out.with_suffix(".partial.npz")
    np.savez(partial, corpus=corpus.astype(np.float32), queries=queries.astype(np.float32))
    partial.replace(out)
    return len(corpus), len(queries), corpus.shape[1]


def exact_top(args: argparse.Namespace, queries: np.ndarray) -> np.ndarray:
    """The exact top-k ids of each query (cosine = dot of unit vectors), over the corpus in chunks."""
    points, k = args.n, args.k
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, points, 50 * BATCH):
        block = corpus_block(args, start, min(50 * BATCH, points - start))
        scores = queries @ block.T
        ids = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argsort(-all_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return best_ids


def _proc_mb(pid: int | str, field: str) -> float | None:
    """One field of /proc/PID/status in MB; None where there is no /proc or the process has just exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory, MB.

    Not ``getrusage``'s ru_maxrss: Linux carries it over from the parent across fork and exec, so a child would
    report the parent's peak when that is higher.
    """
    mb = _proc_mb("self", field)
    return mb if mb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def run_child(command: list[str], every_s: float = 0.5) -> tuple[int, str, str, float]:
    """Run one store's child; return its exit code, stdout, stderr and peak anonymous memory (MB, sampled).

    Peak RSS (VmHWM) counts the pages of memory-mapped files, which the kernel drops under pressure; RssAnon is the
    process's own memory. It is sampled from here because Edge's optimize() holds the child's GIL.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak_anon = 0.0
        while proc.poll() is None:
            peak_anon = max(peak_anon, _proc_mb(proc.pid, "RssAnon") or 0.0)
            time.sleep(every_s)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), peak_anon


def _disk_mb(folder: Path) -> float:
    # Allocated blocks, as `du` counts them: Edge preallocates sparse mmap files whose apparent size is larger.
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20


def _timed_queries(search, queries: np.ndarray, warmup: int = 5) -> tuple[list[list[int]], list[float]]:
    for q in queries[:warmup]:
        search(q)
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = search(q)
        times.append((time.perf_counter() - t0) * 1000)
        ids.append(hits)
    return ids, times


def run_local(args: argparse.Namespace, folder: Path, queries: np.ndarray) -> dict:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(folder))
    params = models.VectorParams(size=args.dim, distance=models.Distance.COSINE)
    client.create_collection("bench", vectors_config=params)
    t0 = time.perf_counter()
    for start in range(0, args.n, BATCH):
        block = corpus_block(args, start, min(BATCH, args.n - start))
        ids = list(range(start, start + len(block)))
        client.upsert(
            "bench",
            points=models.Batch(ids=ids, vectors=block.tolist(), payloads=[{"text": f"document {i}"} for i in ids]),
        )
    upload = time.perf_counter() - t0

    def search(q: np.ndarray) -> list[int]:
        return [p.id for p in client.query_points("bench", query=q.tolist(), limit=args.k).points]

    ids, times = _timed_queries(search, queries)
    client.close()
    return {"upload_s": upload, "build_s": 0.0, "runs": [{"hnsw_ef": None, "ids": ids, "ms": times}]}


def run_edge(args: argparse.Namespace, folder: Path, queries: np.ndarray) -> dict:
    import qdrant_edge as qe

    from laser_integrations import edge

    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=args.dim, distance=qe.Distance.Cosine, on_disk=args.on_disk),
        hnsw_config=qe.HnswIndexConfig(
            m=args.m, ef_construct=args.ef_construct, full_scan_threshold=1 if args.force_hnsw else 10_000
        ),
        # the same REST-form settings `laser index` gives a new folder (--quantization int8)
        quantization_config=edge.quantization_config(QUANTIZATION[args.quantization]),
        # Below 10,000 KB of vectors (about 4,000 points of 576 floats) Qdrant neither builds nor searches a graph:
        # --force-hnsw lowers both thresholds so that a small real corpus is searched through HNSW too
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1) if args.force_hnsw else None,
    )
    shard = qe.EdgeShard.create(str(folder), config)
    t0 = time.perf_counter()
    for start in range(0, args.n, BATCH):
        block = corpus_block(args, start, min(BATCH, args.n - start))
        # numpy rows go to Edge as they are: no Python float per value
        points = [
            qe.Point(id=start + i, vector=row, payload={"text": f"document {start + i}"}) for i, row in enumerate(block)
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    upload = time.perf_counter() - t0
    t0 = time.perf_counter()
    shard.optimize()
    build = time.perf_counter() - t0
    info = shard.info()
    runs = []
    # every hnsw_ef with every oversampling (one oversampling without quantization: it has no effect there)
    oversamplings = args.oversampling if args.quantization != "none" else [None]
    for ef, over in [(ef, over) for over in oversamplings for ef in args.hnsw_ef]:
        quantized = {"quantization": {"rescore": True, "oversampling": over}}
        params = edge.search_params({"hnsw_ef": ef, **(quantized if over is not None else {})})

        def search(q: np.ndarray, params=params) -> list[int]:
            request = qe.QueryRequest(limit=args.k, query=qe.Query.Nearest(q), params=params)
            return [int(p.id) for p in shard.query(request)]

        ids, times = _timed_queries(search, queries)
        runs.append({"hnsw_ef": ef, "oversampling": over, "ids": ids, "ms": times})
    shard.close()
    return {
        "upload_s": upload, "build_s": build, "runs": runs,
        "segments": info.segments_count, "indexed_vectors": info.indexed_vectors_count,
    }  # fmt: skip


def child(args: argparse.Namespace) -> None:
    queries = query_block(args)
    if args.engine == "local":
        import qdrant_client  # noqa: F401 - imported before the baseline, so it counts as the interpreter's
    else:
        import qdrant_edge  # noqa: F401
    base_rss = _rss_mb("VmRSS")
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{args.engine}-", dir=args.tmp))
    try:
        result = (run_local if args.engine == "local" else run_edge)(args, folder / "store", queries)
        result["disk_mb"] = _disk_mb(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.update(peak_rss_mb=_rss_mb(), base_rss_mb=base_rss)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also run 10^6 points (long: tens of minutes)")
    parser.add_argument("--dims", type=int, nargs="+", default=[576, 1024])
    parser.add_argument("--engines", default="local,edge", help="comma-separated: local, edge")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, default=16, help="HNSW edges per node (Edge)")
    parser.add_argument("--ef-construct", type=int, default=100, help="HNSW build beam (Edge)")
    parser.add_argument("--hnsw-ef", type=int, nargs="+", default=[64, 128], help="search beams to try (Edge)")
    parser.add_argument("--quantization", choices=sorted(QUANTIZATION), default="none",
                        help="Edge's vector quantization (int8: `laser index`'s default on a new Edge folder)")
    parser.add_argument("--on-disk", action="store_true",
                        help="Edge keeps the float vectors in memory-mapped files (`laser index`'s default)")
    parser.add_argument("--oversampling", type=float, nargs="+", default=[4.0],
                        help="with --quantization: candidates rescored with the float vectors, as a multiple of k "
                        "(each is tried with each --hnsw-ef)")
    parser.add_argument("--local-max", type=int, default=100_000, help="skip local mode above this many points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="folder for the stores (default: the system temp)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON lines here")
    parser.add_argument(
        "--real", action="store_true",
        help="instead of synthetic vectors: the demo corpus embedded by the shipped demo checkpoint (--real-model, "
        "--real-data), its questions as the queries",
    )  # fmt: skip
    parser.add_argument("--real-model", default=None, help="LaSER checkpoint for --real (default: the demo's)")
    parser.add_argument("--real-data", type=Path, default=None, help="BEIR folder for --real (default: the demo's)")
    parser.add_argument("--real-max-length", type=int, default=None, help="token budget for --real's embedding")
    parser.add_argument(
        "--force-hnsw", action="store_true",
        help="build and search Edge's HNSW however small the corpus (on with --real; Qdrant otherwise scans "
        "segments under 10,000 KB exactly)",
    )  # fmt: skip
    parser.add_argument("--vectors", default=None, help=argparse.SUPPRESS)  # the .npz --real wrote, for the children
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "N", "DIM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.engine, args.n, args.dim = args.child[0], int(args.child[1]), int(args.child[2])
        child(args)
        return

    points = args.points + ([1_000_000] if args.million else [])
    if args.real:
        from laser_integrations.demo.run import DEMO_DATA, SHIPPED_CHECKPOINT

        model, data = args.real_model or str(SHIPPED_CHECKPOINT), args.real_data or DEMO_DATA
        real_dir = Path(tempfile.mkdtemp(prefix="bench-real-", dir=args.tmp))
        args.vectors = str(real_dir / "vectors.npz")
        n, n_queries, dim = embed_real(model, data, Path(args.vectors), args.real_max_length)
        points, args.dims, args.queries = [n], [dim], min(args.queries, n_queries)
        args.force_hnsw = True
        print(f"# real LaSER vectors: {data} ({n} passages) and {args.queries} of its questions, embedded by {model}")
    engines = [e.strip() for e in args.engines.split(",")]
    if not set(engines) <= {"local", "edge"}:
        parser.error(f"--engines takes local and/or edge, got {args.engines!r}")
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    print(
        f"# {args.queries} queries one at a time, top-{args.k}; Edge HNSW m={args.m} ef_construct={args.ef_construct}, "
        f"quantization {args.quantization}"
        + (" (rescored with the float vectors)" if args.quantization != "none" else "")
        + (", float vectors on disk" if args.on_disk else ", float vectors in RAM")
    )
    header = (
        "| store | points | dim | ingest s (upload + build) | points/s | p50 ms | p99 ms | recall@10 "
        "| peak RSS MB | peak anon MB | disk MB |"
    )
    print(header)
    print("|" + "---|" * 11)
    rows = []
    for n in points:
        for dim in args.dims:
            args.n, args.dim = n, dim
            queries = query_block(args)
            truth = exact_top(args, queries)
            p50_local = None
            for engine in engines:
                if engine == "local" and n > args.local_max:
                    print(f"| local mode | {n:,} | {dim} | skipped: exact search is linear in the points (--local-max) |")
                    continue
                command = [sys.executable, __file__, "--child", engine, str(n), str(dim)]
                command += ["--queries", str(args.queries), "--k", str(args.k), "--m", str(args.m)]
                command += ["--ef-construct", str(args.ef_construct), "--seed", str(args.seed), "--hnsw-ef"]
                command += [str(ef) for ef in args.hnsw_ef] + (["--tmp", args.tmp] if args.tmp else [])
                command += ["--vectors", args.vectors] if args.vectors else []
                command += ["--force-hnsw"] if args.force_hnsw else []
                command += ["--quantization", args.quantization, "--oversampling"] + [str(o) for o in args.oversampling]
                command += ["--on-disk"] if args.on_disk else []
                code, stdout, stderr, peak_anon = run_child(command)
                if code != 0:
                    print(f"| {engine} | {n:,} | {dim} | failed: {stderr.strip().splitlines()[-1:]} |")
                    continue
                result = json.loads(stdout.strip().splitlines()[-1])
                ingest = result["upload_s"] + result["build_s"]
                for run in result["runs"]:
                    pairs = zip(run["ids"], truth.tolist(), strict=True)
                    recall = np.mean([len(set(got) & set(want)) / args.k for got, want in pairs])
                    p50, p99 = np.percentile(run["ms"], 50), np.percentile(run["ms"], 99)
                    if engine == "local":
                        p50_local = p50
                        name = "qdrant-client local mode"
                    else:
                        name = f"Qdrant Edge, hnsw_ef={run['hnsw_ef']}"
                        name += f", {run['oversampling']:g}x rescored" if run.get("oversampling") else ""
                    row = {
                        "store": name, "points": n, "dim": dim, "upload_s": round(result["upload_s"], 2),
                        "build_s": round(result["build_s"], 2), "points_per_s": round(n / ingest),
                        "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "recall_at_10": round(float(recall), 4),
                        "peak_rss_mb": round(result["peak_rss_mb"]), "peak_anon_mb": round(peak_anon),
                        "base_rss_mb": round(result["base_rss_mb"]),
                        "disk_mb": round(result["disk_mb"], 1), "m": args.m, "ef_construct": args.ef_construct,
                        "oversampling": run.get("oversampling"), "quantization": args.quantization,
                        "on_disk": args.on_disk, "segments": result.get("segments"), "indexed_vectors": result.get("indexed_vectors"),
                    }  # fmt: skip
                    rows.append(row)
                    ratio = ""
                    if engine == "edge" and p50_local:
                        times = p50_local / p50
                        ratio = f" ({times:.1f}x faster)" if times >= 1 else f" ({1 / times:.1f}x slower)"
                    print(
                        f"| {name} | {n:,} | {dim} | {ingest:.1f} ({result['upload_s']:.1f} + {result['build_s']:.1f}) "
                        f"| {n / ingest:,.0f} | {p50:.2f}{ratio} | {p99:.2f} | {recall:.3f} | "
                        f"{result['peak_rss_mb']:,.0f} | {peak_anon:,.0f} | {result['disk_mb']:,.0f} |",
                        flush=True,
                    )
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    print("# peak anon MB: the child's own memory (RssAnon, sampled every 0.5 s), without memory-mapped file pages")
    print("# peak RSS includes the Python interpreter, numpy and the client library (about "
          f"{statistics.median(r['base_rss_mb'] for r in rows) if rows else 0:.0f} MB before the store opens)")
    if args.vectors:
        shutil.rmtree(Path(args.vectors).parent, ignore_errors=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
