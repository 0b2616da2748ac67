"""``QdrantEdgeEmbeddingRetriever``: dense search of a ``QdrantEdgeDocumentStore``."""

from .retriever import QdrantEdgeEmbeddingRetriever

__all__ = ["QdrantEdgeEmbeddingRetriever"]
