"""LaSER for Haystack 3: the components, re-exported from their ``haystack_integrations`` home.

They live under ``haystack_integrations.components.*`` (like every Haystack integration) so that
``Pipeline.loads`` accepts them without an allow-list; import them from either place.

Example:
    >>> from haystack import Pipeline
    >>> from laser_integrations.haystack import LaSERTextEmbedder, LaSERDocumentEmbedder, LaSERRetriever
"""

from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder, LaSERTextEmbedder
from haystack_integrations.components.retrievers.laser import LaSERRetriever

__all__ = ["LaSERDocumentEmbedder", "LaSERRetriever", "LaSERTextEmbedder"]
