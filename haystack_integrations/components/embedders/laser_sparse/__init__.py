"""BM25 sparse vectors for LaSER hybrid search: ``BM25SparseDocumentEmbedder``."""

from .bm25_document_embedder import BM25SparseDocumentEmbedder

__all__ = ["BM25SparseDocumentEmbedder"]
