"""``laser-train mine``: hard negatives for a BEIR folder from any LaSER encoder, BM25 or a sentence-transformers model.

Every training query ranks the corpus (by embedding similarity, or by BM25 score), the query's positives are removed,
and negatives are taken from the ranks ``[rank_start, rank_end)`` that remain (skipping the very top guards
against unlabelled positives). The output is a JSONL training file (``query``, ``instruction``,
``reasoning``, ``positives``, ``negatives`` as texts, and ``_id``) that ``laser-train`` reads directly.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data import TrainExample


def mine_negatives(
    ranker: Any,
    examples: Sequence[TrainExample],
    documents: Sequence[str],
    *,
    num_negatives: int = 4,
    rank_start: int = 0,
    rank_end: int = 30,
    batch_size: int = 16,
    show_progress: bool = False,
) -> list[list[str]]:
    """For each example, the ``num_negatives`` documents ranked highest in ``[rank_start, rank_end)`` once its
    positives are removed (fewer when the window holds fewer); the texts come from ``documents``.

    Args:
        ranker: what ranks ``documents``: a :class:`~laser_integrations.LaSEREncoder`, or any retriever
            ``laser eval`` takes (:func:`~laser_integrations.evaluation.run.load_model`): a
            :class:`~laser_integrations.evaluation.baselines.BM25Baseline` ranks by its own scores (a document
            that shares no term with the query is never a negative), a sentence-transformers baseline embeds.
        examples: the training queries (their ``query`` ranks, their ``positives`` are excluded).
        documents: the texts to rank, e.g. the corpus or the training document pool.
        num_negatives: negatives per example.
        rank_start: first rank (0-based, after removing positives) a negative may come from.
        rank_end: rank after the last one a negative may come from.
    """
    if not 0 <= rank_start < rank_end:
        msg = f"The rank window needs 0 <= rank_start < rank_end, got [{rank_start}, {rank_end})."
        raise ValueError(msg)
    if num_negatives < 1:
        msg = f"num_negatives must be >= 1, got {num_negatives}."
        raise ValueError(msg)
    documents = list(documents)
    queries = [ex.query for ex in examples]
    if hasattr(ranker, "search"):  # BM25: ranks by its own scores, deep enough for the window after positives
        depth = rank_end + max(len(ex.positives) for ex in examples)
        ranker.index([str(j) for j in range(len(documents))], documents, show_progress=show_progress)
        hits = ranker.search(queries, depth, show_progress=show_progress)
        order = [[int(j) for j in sorted(h, key=h.__getitem__, reverse=True)] for h in hits]
    else:
        d = ranker.encode_documents(documents, batch_size=batch_size, show_progress=show_progress)
        q = ranker.encode_queries(queries, batch_size=batch_size, show_progress=show_progress)
        order = np.argsort(-(q @ d.T), axis=1, kind="stable").tolist()
    mined = []
    for row, ex in enumerate(examples):
        positives = set(ex.positives)
        ranked = [documents[j] for j in order[row] if documents[j] not in positives]
        mined.append(ranked[rank_start:rank_end][:num_negatives])
    return mined


def mine_hard_negatives(
    encoder: Any,
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    split: str = "train",
    num_negatives: int = 4,
    rank_start: int = 0,
    rank_end: int = 30,
    batch_size: int = 16,
    show_progress: bool = True,
) -> Path:
    """Write a JSONL training file with ``num_negatives`` mined negatives per query; returns its path.

    Args:
        encoder: what ranks the corpus (see :func:`mine_negatives`).
        data: BEIR folder (corpus.jsonl, queries.jsonl, qrels/{split}.tsv, optional reasoning.jsonl).
        output: JSONL file to write (atomically).
        split: qrels split whose queries are mined.
        num_negatives, rank_start, rank_end: as :func:`mine_negatives`.
    """
    from .data import load_beir

    examples, corpus = load_beir(data, split)
    mined = mine_negatives(encoder, examples, list(corpus.values()), num_negatives=num_negatives,
                           rank_start=rank_start, rank_end=rank_end, batch_size=batch_size,
                           show_progress=show_progress)  # fmt: skip
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ex, negatives in zip(examples, mined):
            record = {"_id": ex.id, "query": ex.query, "positives": ex.positives, "negatives": negatives}
            if ex.instruction is not None:
                record["instruction"] = ex.instruction
            if ex.reasoning is not None:
                record["reasoning"] = ex.reasoning
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(output)
    return output


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mine", help="mine hard negatives", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="BEIR folder")
    p.add_argument("--model", required=True, help="what ranks the corpus: a LaSEREncoder checkpoint (folder, hub id, "
                   ".gguf, alias), bm25, minilm, st:NAME or a sentence-transformers folder (as laser eval's --model)")
    p.add_argument("--output", required=True, help="JSONL training file to write")
    p.add_argument("--split", default="train")
    p.add_argument("--num_negatives", type=int, default=4)
    p.add_argument("--rank_start", type=int, default=0, help="first rank (0-based, positives removed) to take from")
    p.add_argument("--rank_end", type=int, default=30, help="rank after the last one to take from")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--device", default=None)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.run import load_model

    encoder = load_model(args.model, device=args.device)  # resolves offline aliases, bm25 and minilm too
    out = mine_hard_negatives(encoder, args.data, args.output, split=args.split, num_negatives=args.num_negatives,
                              rank_start=args.rank_start, rank_end=args.rank_end, batch_size=args.batch_size)  # fmt: skip
    print(f"Wrote {out}")
    return 0
