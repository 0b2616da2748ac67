"""A Haystack document store on Qdrant Edge: Qdrant's own engine (HNSW, WAL, payload indexes) in this process."""

from .document_store import QdrantEdgeDocumentStore
from .filters import convert_filters

__all__ = ["QdrantEdgeDocumentStore", "convert_filters"]
