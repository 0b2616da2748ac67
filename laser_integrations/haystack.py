"""LaSER for Haystack 3: the components, re-exported from their ``haystack_integrations`` home.

They live under ``haystack_integrations.components.*`` (like every Haystack integration) so that
``Pipeline.loads`` accepts them without an allow-list; import them from either place.

Example:
    >>> from haystack import Pipeline
    >>> from laser_integrations.haystack import LaSERTextEmbedder, LaSERDocumentEmbedder, LaSERRetriever
"""

from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder, LaSERTextEmbedder
from haystack_integrations.components.embedders.laser_sparse import BM25SparseDocumentEmbedder
from haystack_integrations.components.retrievers.laser import LaSERHybridRetriever, LaSERRetriever

__all__ = [
    "BM25SparseDocumentEmbedder", "LaSERDocumentEmbedder", "LaSERHybridRetriever", "LaSERRetriever", "LaSERTextEmbedder",
]  # fmt: skip
