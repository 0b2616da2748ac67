"""LaSER embedders for Haystack: ``LaSERTextEmbedder`` (queries) and ``LaSERDocumentEmbedder`` (documents)."""

from .document_embedder import LaSERDocumentEmbedder
from .text_embedder import LaSERTextEmbedder

__all__ = ["LaSERDocumentEmbedder", "LaSERTextEmbedder"]
