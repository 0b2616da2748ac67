"""The demo's two Haystack pipelines: index passages into Qdrant, and answer a question from it.

Both are plain compositions of the project's components, exactly what a user would build:

    indexing:  LaSERDocumentEmbedder -> DocumentWriter(QdrantEdgeDocumentStore, OVERWRITE)
    querying:  LaSERTextEmbedder     -> QdrantEdgeEmbeddingRetriever (QdrantEmbeddingRetriever on qdrant-client)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from haystack import Document, Pipeline
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore


def indexing_pipeline(model: str, store: QdrantDocumentStore | QdrantEdgeDocumentStore, *, batch_size: int = 16) -> Pipeline:
    """``LaSERDocumentEmbedder`` (with a progress bar) into a ``DocumentWriter`` that upserts into ``store``."""
    from haystack import Pipeline
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.types import DuplicatePolicy

    from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder

    pipeline = Pipeline()
    pipeline.add_component("embedder", LaSERDocumentEmbedder(model=model, batch_size=batch_size, progress_bar=True))
    # OVERWRITE: point ids derive from Document.id, so re-indexing replaces points instead of duplicating them.
    pipeline.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    pipeline.connect("embedder.documents", "writer.documents")
    return pipeline


def embedding_retriever(store: QdrantDocumentStore | QdrantEdgeDocumentStore, *, top_k: int = 10) -> Any:
    """The embedding retriever of ``store``'s engine: ``QdrantEdgeEmbeddingRetriever`` for a Qdrant Edge store (the
    embedded default), qdrant-haystack's ``QdrantEmbeddingRetriever`` for a ``QdrantDocumentStore``."""
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

    if isinstance(store, QdrantEdgeDocumentStore):
        from haystack_integrations.components.retrievers.laser_edge import QdrantEdgeEmbeddingRetriever

        return QdrantEdgeEmbeddingRetriever(document_store=store, top_k=top_k)
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever

    return QdrantEmbeddingRetriever(document_store=store, top_k=top_k)


def query_pipeline(model: str, store: QdrantDocumentStore | QdrantEdgeDocumentStore, *, top_k: int = 10) -> Pipeline:
    """``LaSERTextEmbedder`` into the embedding retriever of ``store`` (:func:`embedding_retriever`)."""
    from haystack import Pipeline

    from haystack_integrations.components.embedders.laser import LaSERTextEmbedder

    pipeline = Pipeline()
    # One query at a time: a bar per query would only be noise, the caller shows one over all questions.
    pipeline.add_component("embedder", LaSERTextEmbedder(model=model, progress_bar=False))
    pipeline.add_component("retriever", embedding_retriever(store, top_k=top_k))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    return pipeline


def corpus_documents(corpus: Mapping[str, str]) -> list[Document]:
    """Haystack Documents keyed by the corpus ids, so retrieved ids can be scored against the qrels."""
    from haystack import Document

    return [Document(id=doc_id, content=text) for doc_id, text in corpus.items()]


def answer_all(
    pipeline: Pipeline,
    queries: Mapping[str, str],
    *,
    desc: str = "Answering",
) -> dict[str, list[Document]]:
    """Run the query pipeline once per question (one progress bar); question id -> retrieved Documents."""
    results: dict[str, list[Document]] = {}
    for qid, text in tqdm(queries.items(), total=len(queries), desc=desc, unit="question"):
        documents = pipeline.run({"embedder": {"text": text}})["retriever"]["documents"]
        results[qid] = documents
    return results


def to_run(results: Mapping[str, Sequence[Document]]) -> dict[str, dict[str, float]]:
    """Retrieved Documents as a ranx-style run: question id -> {document id: score}."""
    run: dict[str, dict[str, float]] = {}
    for qid, documents in results.items():
        run[qid] = {doc.id: float(doc.score if doc.score is not None else 0.0) for doc in documents}
    return run

