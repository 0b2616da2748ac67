"""``LaSERRetriever`` (dense) and ``LaSERHybridRetriever`` (dense + BM25, RRF): query in, Documents out."""

from .hybrid_retriever import LaSERHybridRetriever
from .retriever import LaSERRetriever

__all__ = ["LaSERHybridRetriever", "LaSERRetriever"]
