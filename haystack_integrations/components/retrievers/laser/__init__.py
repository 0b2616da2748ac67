"""``LaSERRetriever``: LaSER query embedding and Qdrant search in one Haystack component."""

from .retriever import LaSERRetriever

__all__ = ["LaSERRetriever"]
