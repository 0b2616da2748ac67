"""What the framework components add on top of the encoder plus qdrant-client, measured side by side.

Indexes the same few thousand short documents two (or three) ways, in one process, rounds interleaved:

- ``direct``: ``LaSEREncoder.encode_documents`` + ``QdrantClient.upsert`` (what you would write by hand);
- ``haystack``: ``LaSERDocumentEmbedder`` -> ``DocumentWriter`` into ``open_document_store`` (a Pipeline);
- ``llama-index`` (with ``--llama-index``): ``VectorStoreIndex`` with ``LaSEREmbedding`` on ``open_vector_store``.

All use embedded in-memory Qdrant, the same checkpoint, batch size 32 and the checkpoint's K. The default
checkpoint is a random Llama with hidden size 256 and 4 layers: encoding is cheap, so what the frameworks add
weighs as much as it ever will. ``--model`` times a real checkpoint instead (a folder, a hub id, or
``smollm2-135m-offline``, the smallest real backbone that runs offline), where encoding dominates as it does
for users. The figure of
merit is each path's time divided by the direct path's in the same round (rounds interleave the paths, so
load from other processes hits them alike), median over rounds: wall clock and process CPU time. Because every
path spends most of its time in the same ``LaSEREncoder.encode`` call, the script also times what each path
spends outside it, and splits that time by stage: the LaSER component's own code (its ``run`` minus ``encode``),
the write into Qdrant (``QdrantClient.upsert`` directly, ``DocumentWriter`` through qdrant-haystack), and the rest
(building points or Documents, the framework's own bookkeeping). On a machine shared with other jobs these
differences are the steadiest figures. Odd rounds run the paths in order, even rounds in reverse, so a machine
that speeds up or slows down during the run does not favour the path that runs first.

Run:
    python benchmarks/integration_overhead.py                  # 2000 documents, 3 rounds, direct vs Haystack
    python benchmarks/integration_overhead.py --llama-index    # and the LlamaIndex path too
    python benchmarks/integration_overhead.py --model smollm2-135m-offline --docs 500   # a real 135M backbone
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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

    embed_model = LaSEREmbedding(model, device="cpu", encode_batch_size=batch_size)  # default hand-over: 256 texts
    store = open_vector_store(location=":memory:", collection="llama", embedding_dim=dimension)
    nodes = [TextNode(text=text, id_=str(uuid.uuid5(uuid.NAMESPACE_URL, str(i)))) for i, text in enumerate(texts)]
    VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model)
    count = store.client.count("llama").count
    store.client.close()
    return count


class MethodTimer:
    """Wall time spent inside ``owner.name`` (a method, patched on the class for the duration of the block)."""

    def __init__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name
        self.seconds = 0.0
        self._method = owner.__dict__[name]

    def __enter__(self) -> MethodTimer:
        timer, method = self, self._method

        @functools.wraps(method)
        def timed(instance, *args, **kwargs):
            start = time.perf_counter()
            try:
                return method(instance, *args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - start

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.owner, self.name, self._method)


def stage_timers() -> dict[str, MethodTimer]:
    """The calls each path's time is split by. ``encode`` is shared by all; the rest say who adds what."""
    from haystack.components.writers import DocumentWriter
    from qdrant_client import QdrantClient

    from laser_integrations.haystack import LaSERDocumentEmbedder
    from laser_integrations.llama_index import LaSEREmbedding

    return {
        "encode": MethodTimer(LaSEREncoder, "encode"),
        "haystack_embedder": MethodTimer(LaSERDocumentEmbedder, "run"),
        "llama_embedder": MethodTimer(LaSEREmbedding, "_get_text_embeddings"),
        "writer": MethodTimer(DocumentWriter, "run"),
        "upsert": MethodTimer(QdrantClient, "upsert"),
        "upload_points": MethodTimer(QdrantClient, "upload_points"),  # LlamaIndex's QdrantVectorStore writes this way
    }


def breakdown(name: str, total: float, timers: dict[str, MethodTimer]) -> dict[str, float]:
    """Split one path's wall time into encode / LaSER component / Qdrant write / the rest."""
    encode = timers["encode"].seconds
    component = {"haystack": timers["haystack_embedder"], "llama-index": timers["llama_embedder"]}.get(name)
    component_s = component.seconds - encode if component is not None else 0.0
    # qdrant-haystack's DocumentWriter calls QdrantClient.upsert itself: count the writer once, as a whole.
    write = timers["writer"].seconds if name == "haystack" else timers["upsert"].seconds + timers["upload_points"].seconds
    return {"encode": encode, "component": component_s, "write": write, "rest": total - encode - component_s - write}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="number of documents (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per path (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s, see below)")
    parser.add_argument("--llama-index", action="store_true", help="also time the LlamaIndex path")
    parser.add_argument(
        "--model", default=None, help="checkpoint to time (folder, hub id or smollm2-135m-offline); default: a random "
        "Llama with hidden size 256 and 4 layers"
    )
    args = parser.parse_args(argv)
    # One thread by default: CPU time then measures work done, not spinning threads, even on a shared machine.
    torch.set_num_threads(args.threads)

    texts = make_corpus(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(save_model(Path(tmp) / "bench-model"))
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
        wall: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        stages: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        for round_ in range(1, args.rounds + 1):
            # Interleaved, so machine noise hits every path alike; reversed every other round against drift.
            order = list(paths) if round_ % 2 else list(reversed(paths))
            for name in order:
                timers = stage_timers()
                start, start_cpu = time.perf_counter(), time.process_time()
                with contextlib.ExitStack() as stack:
                    for timer in timers.values():
                        stack.enter_context(timer)
                    count = paths[name](texts)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                stages[name].append(breakdown(name, wall[name][-1], timers))
                parts = "  ".join(f"{stage} {seconds:6.2f} s" for stage, seconds in stages[name][-1].items())
                print(
                    f"round {round_}: {name:<11} wall {wall[name][-1]:7.2f} s  cpu {cpu[name][-1]:7.2f} s  {parts}",
                    file=sys.stderr,
                    flush=True,
                )
                if count != len(texts):
                    print(f"{name} stored {count} of {len(texts)} documents", file=sys.stderr)
                    return 1

    def ratio(values: dict[str, list[float]], name: str) -> float:
        return statistics.median(v / d for v, d in zip(values[name], values["direct"], strict=True))

    checkpoint = args.model or "random Llama hidden 256 x 4 layers"
    print(
        f"{args.docs} documents x {args.rounds} rounds, batch size {args.batch_size}, torch threads {args.threads}, "
        f"{checkpoint}, K={direct_encoder.config.num_thinking_steps}, in-memory Qdrant"
    )
    def stage(name: str, key: str) -> float:
        return statistics.median(parts[key] for parts in stages[name])

    def outside(name: str) -> float:
        return statistics.median(w - parts["encode"] for w, parts in zip(wall[name], stages[name], strict=True))

    print(
        f"{'path':<12} {'wall s':>8} {'cpu s':>8} {'wall/direct':>12} {'cpu/direct':>11} {'outside encode s':>17} "
        f"{'LaSER component s':>18} {'Qdrant write s':>15} {'rest s':>7}"
    )
    for name in paths:
        print(
            f"{name:<12} {statistics.median(wall[name]):>8.2f} {statistics.median(cpu[name]):>8.2f} "
            f"{ratio(wall, name):>11.3f}x {ratio(cpu, name):>10.3f}x {outside(name):>17.2f} "
            f"{stage(name, 'component'):>18.3f} {stage(name, 'write'):>15.2f} {stage(name, 'rest'):>7.2f}"
        )
    print("per-round wall/direct: " + "; ".join(
        f"{name} " + ", ".join(f"{v / d:.3f}x" for v, d in zip(wall[name], wall["direct"], strict=True))
        for name in paths if name != "direct"
    ))  # fmt: skip
    # The paths share the encode call; what they add is the time spent outside it, relative to the direct total.
    direct_total = statistics.median(wall["direct"])
    for name in paths:
        if name != "direct":
            extra = outside(name) - outside("direct")
            own = stage(name, "component")
            print(
                f"{name}: outside encode minus direct's = {extra:+.2f} s = {100 * extra / direct_total:+.1f} % of the "
                f"direct path; of it the LaSER component's own code {own:.3f} s = {100 * own / direct_total:.2f} %"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
