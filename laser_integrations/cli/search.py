"""``laser search "question"``: embed a question with LaSER and print the best hits of an indexed collection."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._qdrant_args import (
    add_model_arguments,
    add_store_arguments,
    embedder_kwargs,
    missing_haystack,
    store_kwargs,
    where,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "search",
        help="search an indexed collection and print the top hits",
        description=__doc__.splitlines()[0].replace("``", ""),
    )
    parser.add_argument("query", metavar="QUESTION", help="the question or search text")
    add_model_arguments(parser)
    add_store_arguments(parser)
    parser.add_argument("--top-k", type=int, default=10, help="number of hits (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per hit instead of a table")
    parser.add_argument("--hybrid", action="store_true", help="fuse LaSER and BM25 by RRF (a collection indexed with --hybrid)")
    parser.set_defaults(command="search")
    return parser


def _snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _open_store(open_document_store: Any, dimension: int, args: argparse.Namespace) -> Any:
    from ..qdrant import CollectionLayoutError

    kwargs = {"embedding_dim": dimension, "progress_bar": False, **store_kwargs(args)}
    try:
        return open_document_store(hybrid=args.hybrid, **kwargs)
    except CollectionLayoutError:
        if args.hybrid:
            raise
        # A collection indexed with --hybrid also holds the dense vectors: a plain search reads those.
        return open_document_store(hybrid=True, **kwargs)


def run(args: argparse.Namespace) -> int:
    if hint := missing_haystack():
        print(f"laser search: {hint}", file=sys.stderr)
        return 1
    from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
    from haystack_integrations.components.retrievers.laser import LaSERHybridRetriever, LaSERRetriever

    from ..qdrant import CollectionDimensionError, StorageLockedError, open_document_store

    if args.top_k < 1:
        print(f"laser search: --top-k must be a positive integer, got {args.top_k}.", file=sys.stderr)
        return 2
    try:
        # Load the model first: its dimension is what the collection must hold (the retriever reuses this load).
        embedder = LaSERTextEmbedder(**embedder_kwargs(args), progress_bar=False)
        embedder.warm_up()
        store = _open_store(open_document_store, embedder.encoder.dimension, args)  # type: ignore[union-attr]
    except (FileNotFoundError, CollectionDimensionError, StorageLockedError, ValueError) as e:
        print(f"laser search: {e}", file=sys.stderr)
        return 1
    try:
        if store.count_documents() == 0:
            print(
                f"laser search: collection {args.collection!r} in {where(args)} is empty; "
                "index a corpus first with `laser index CORPUS`.",
                file=sys.stderr,
            )
            return 1
        kind = LaSERHybridRetriever if args.hybrid else LaSERRetriever
        retriever = kind(document_store=store, **embedder_kwargs(args), top_k=args.top_k)
        documents = retriever.run(args.query)["documents"]
    finally:
        store.close()
    for rank, doc in enumerate(documents, start=1):
        title = doc.meta.get("title", "")
        if args.json:
            print(json.dumps({"rank": rank, "score": doc.score, "id": doc.id, "title": title, "text": doc.content}))
        else:
            head = f"{title}: " if title else ""
            print(f"{rank:>3}. {doc.score:.4f}  {doc.id}  {_snippet(head + (doc.content or ''))}")
    return 0
