"""``laser search "question"``: embed a question with LaSER and print the best hits of an indexed collection.

It opens the collection read-only (a mistyped --path or --collection is an error naming what exists; nothing is
created) and refuses a collection indexed by another model, K or input format (--allow-model-mismatch: warn).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._qdrant_args import (
    add_model_arguments,
    add_search_settings,
    add_store_arguments,
    embedder_kwargs,
    missing_haystack,
    search_settings,
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
    add_search_settings(parser)
    parser.add_argument("--top-k", type=int, default=10, help="number of hits (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per hit instead of a table")
    parser.add_argument("--allow-model-mismatch", action="store_true",
                        help="search a collection indexed by another model, K or input format with a warning "
                        "instead of an error (its scores are not comparable)")  # fmt: skip
    parser.add_argument("--hybrid", action="store_true", help="fuse LaSER and BM25 by RRF (a collection indexed with --hybrid)")
    parser.set_defaults(command="search")
    return parser


def _snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _open_store(open_document_store: Any, dimension: int, args: argparse.Namespace) -> Any:
    from ..qdrant import CollectionLayoutError

    kwargs = {"embedding_dim": dimension, "progress_bar": False, "read_only": True, **store_kwargs(args),
              **search_settings(args)}  # fmt: skip
    try:
        return open_document_store(hybrid=args.hybrid, **kwargs)
    except CollectionLayoutError:
        if args.hybrid:
            raise
        # A collection indexed with --hybrid also holds the dense vectors: a plain search reads those.
        return open_document_store(hybrid=True, **kwargs)


def run(args: argparse.Namespace) -> int:
    if hint := missing_haystack():
        raise ImportError(hint)
    from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
    from haystack_integrations.components.retrievers.laser import LaSERHybridRetriever, LaSERRetriever

    from ..qdrant import open_document_store, require_collection

    if args.top_k < 1:
        msg = f"--top-k must be a positive integer, got {args.top_k}."
        raise ValueError(msg)
    if not args.query.strip():
        msg = 'the question is empty; give the text to search for, e.g. laser search "which theorem bounds codes?".'
        raise ValueError(msg)
    search_settings(args)  # bad flags fail before the model loads
    # A mistyped --path or --collection fails before the (slow) model load, and creates nothing.
    require_collection(**store_kwargs(args))
    # Then the model: its dimension is what the collection must hold (the retriever reuses this load).
    embedder = LaSERTextEmbedder(**embedder_kwargs(args), progress_bar=False)
    embedder.warm_up()
    store = _open_store(open_document_store, embedder.encoder.dimension, args)  # type: ignore[union-attr]
    try:
        if store.count_documents() == 0:
            msg = (
                f"collection {args.collection!r} in {where(args)} is empty; "
                "index a corpus first with `laser index CORPUS`."
            )
            raise ValueError(msg)
        # The retriever checks at warm-up that the collection was indexed by this model, K and format.
        kind = LaSERHybridRetriever if args.hybrid else LaSERRetriever
        retriever = kind(document_store=store, **embedder_kwargs(args), top_k=args.top_k,
                         allow_model_mismatch=args.allow_model_mismatch)  # fmt: skip
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
