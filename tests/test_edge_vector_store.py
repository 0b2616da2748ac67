"""QdrantEdgeVectorStore: LlamaIndex's vector store contract on a Qdrant Edge shard."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

qe = pytest.importorskip("qdrant_edge")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from laser_integrations.edge_vector_store import QdrantEdgeVectorStore, point_id  # noqa: E402
from laser_integrations.qdrant import CollectionDimensionError, StorageLockedError  # noqa: E402

DIM = 8

# A deterministic bag-of-words embed model, shared with the child process below (no model download, no torch).
EMBED_CODE = textwrap.dedent("""
    import hashlib
    import numpy as np
    from llama_index.core.embeddings import BaseEmbedding

    def words_vector(text, dim=32):
        v = np.zeros(dim)
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
        return (v / (np.linalg.norm(v) or 1.0)).tolist()

    class WordsEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query):
            return words_vector(query)
        async def _aget_query_embedding(self, query):
            return words_vector(query)
        def _get_text_embedding(self, text):
            return words_vector(text)
""")
namespace: dict = {}
exec(EMBED_CODE, namespace)  # noqa: S102 - the test's own code, run here and in the child alike
WordsEmbedding = namespace["WordsEmbedding"]


def _nodes(n: int = 30, seed: int = 0) -> list[TextNode]:
    rng = np.random.default_rng(seed)
    nodes = []
    for i in range(n):
        node = TextNode(
            id_=f"node-{i}" if i % 3 else str(uuid.UUID(int=i + 1)),  # UUID and non-UUID ids
            text=f"text {i}",
            metadata={"genre": ["news", "blog", "paper"][i % 3], "year": 2000 + i, "score": i / 10},
            embedding=rng.standard_normal(DIM).tolist(),
        )
        node.relationships = {}
        nodes.append(node)
    return nodes


def _exact(nodes: list[TextNode], query: np.ndarray, keep=lambda n: True, k: int = 5) -> list[tuple[str, float]]:
    scored = [
        (n.node_id, float(np.dot(n.embedding, query) / np.linalg.norm(n.embedding) / np.linalg.norm(query)))
        for n in nodes
        if keep(n)
    ]
    return sorted(scored, key=lambda item: -item[1])[:k]


@pytest.fixture
def store(tmp_path):
    store = QdrantEdgeVectorStore(path=tmp_path, collection_name="nodes")
    yield store
    store.close()


def test_query_matches_exact_cosine_with_metadata_filters(store):
    nodes = _nodes()
    assert store.add(nodes) == [n.node_id for n in nodes]
    assert store.embedding_dim == DIM  # taken from the first add
    query = np.random.default_rng(1).standard_normal(DIM)

    def search(filters=None, **kwargs):
        q = VectorStoreQuery(query_embedding=query.tolist(), similarity_top_k=5, filters=filters, **kwargs)
        return store.query(q)

    result = search()
    want = _exact(nodes, query)
    assert result.ids == [i for i, _ in want]
    np.testing.assert_allclose(result.similarities, [s for _, s in want], atol=1e-5)
    by_id = {n.node_id: n for n in nodes}
    for node in result.nodes:
        assert (node.text, node.metadata) == (by_id[node.node_id].text, by_id[node.node_id].metadata)
        written = np.asarray(by_id[node.node_id].embedding)
        np.testing.assert_allclose(node.embedding, written / np.linalg.norm(written), atol=1e-6)  # cosine: unit

    cases = [
        (MetadataFilters(filters=[MetadataFilter(key="genre", value="blog")]), lambda n: n.metadata["genre"] == "blog"),
        (
            MetadataFilters(filters=[
                MetadataFilter(key="year", value=2010, operator=FilterOperator.GTE),
                MetadataFilter(key="score", value=2.5, operator=FilterOperator.LT),
            ]),
            lambda n: n.metadata["year"] >= 2010 and n.metadata["score"] < 2.5,
        ),
        (
            MetadataFilters(filters=[MetadataFilter(key="genre", value=["news", "paper"], operator=FilterOperator.IN)]),
            lambda n: n.metadata["genre"] in ("news", "paper"),
        ),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="genre", value="news"), MetadataFilter(key="year", value=2001)],
                condition=FilterCondition.OR,
            ),
            lambda n: n.metadata["genre"] == "news" or n.metadata["year"] == 2001,
        ),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="genre", value="news"), MetadataFilter(key="year", value=2003)],
                condition=FilterCondition.NOT,
            ),
            lambda n: not (n.metadata["genre"] == "news" and n.metadata["year"] == 2003),
        ),
        (MetadataFilters(filters=[MetadataFilter(key="score", value=0.7)]), lambda n: n.metadata["score"] == 0.7),
    ]  # fmt: skip
    for filters, keep in cases:
        assert search(filters).ids == [i for i, _ in _exact(nodes, query, keep)], filters

    two = ("node-1", "node-2")
    assert search(node_ids=list(two)).ids == [i for i, _ in _exact(nodes, query, lambda n: n.node_id in two)]


def test_delete_by_document_and_by_node_ids(store):
    docs = {"doc-a": 3, "doc-b": 2}
    nodes = []
    for doc_id, count in docs.items():
        for j in range(count):
            node = TextNode(id_=f"{doc_id}-{j}", text=f"{doc_id} part {j}", embedding=[1.0 + j] + [0.5] * (DIM - 1))
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
            nodes.append(node)
    store.add(nodes)
    store.delete("doc-a")
    assert sorted(n.node_id for n in store.get_nodes()) == ["doc-b-0", "doc-b-1"]
    assert store.get_nodes(node_ids=["doc-b-1"])[0].ref_doc_id == "doc-b"
    store.delete_nodes(node_ids=["doc-b-0"])
    assert [n.node_id for n in store.get_nodes()] == ["doc-b-1"]
    store.add(nodes[:1])
    of_a = MetadataFilters(filters=[MetadataFilter(key="doc_id", value="doc-a")])
    store.delete_nodes(node_ids=["doc-a-0", "doc-b-1"], filters=of_a)
    assert [n.node_id for n in store.get_nodes()] == ["doc-b-1"]  # ids and filters: only nodes satisfying both
    store.clear()
    assert store.get_nodes() == []


def test_refuses_what_it_cannot_honour(store, tmp_path):
    store.add(_nodes(3))
    with pytest.raises(ValueError, match=r"answers the query modes \[.default.\] \(hybrid and sparse need enable_hybrid=True"):
        store.query(VectorStoreQuery(query_embedding=[0.0] * DIM, mode=VectorStoreQueryMode.HYBRID))
    with pytest.raises(ValueError, match="query embedding has 2 values, but .* holds vectors of 8"):
        store.query(VectorStoreQuery(query_embedding=[0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Embeddings of \[3\] values cannot go into .*Nothing was written"):
        store.add([TextNode(text="x", embedding=[0.0, 1.0, 2.0])])
    with pytest.raises(ValueError, match="cannot honour the filter operator 'text_match_insensitive'"):
        insensitive = MetadataFilter(key="genre", value="x", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)
        store.query(VectorStoreQuery(query_embedding=[0.0] * DIM, filters=MetadataFilters(filters=[insensitive])))
    with pytest.raises(ValueError, match=r"Unknown hnsw_config key\(s\) \['M'\]"):
        QdrantEdgeVectorStore(path=tmp_path, hnsw_config={"M": 4})
    store.close()
    with pytest.raises(CollectionDimensionError, match="holds vector 'text-dense' of size 8, but 4 dimensions"):
        QdrantEdgeVectorStore(path=tmp_path, collection_name="nodes", embedding_dim=4).open()
    with pytest.raises(CollectionDimensionError, match=r"has no vector 'other' \(it has \['text-dense'\]\)"):
        QdrantEdgeVectorStore(path=tmp_path, collection_name="nodes", vector_name="other").open()


def test_settings_and_indexes_reach_the_shard(tmp_path):
    store = QdrantEdgeVectorStore(
        path=tmp_path, embedding_dim=DIM, hnsw_config={"m": 8, "ef_construct": 16},
        quantization_config={"binary": {"always_ram": True}},
        payload_indexes=[{"field_name": "genre", "field_schema": "keyword"}],
    )  # fmt: skip
    shard = store.open()
    schema = shard.info().payload_schema
    assert set(schema) == {"genre", "doc_id"}
    config = json.loads((tmp_path / "laser" / "edge_config.json").read_text())
    assert config["hnsw_config"]["m"] == 8 and config["hnsw_config"]["ef_construct"] == 16
    assert config["quantization_config"] == {"binary": {"always_ram": True}}
    assert store.to_dict()["hnsw_config"] == {"m": 8, "ef_construct": 16}
    store.close()


_CHILD = EMBED_CODE + textwrap.dedent("""
    import sys
    from llama_index.core import VectorStoreIndex
    from laser_integrations.edge_vector_store import QdrantEdgeVectorStore
    from laser_integrations.qdrant import StorageLockedError
    store = QdrantEdgeVectorStore(path=sys.argv[1], collection_name="notes")
    try:
        store.open()
    except StorageLockedError as e:
        print("LOCKED", e, flush=True)
    sys.stdin.readline()  # the parent has closed its store
    index = VectorStoreIndex.from_vector_store(store, embed_model=WordsEmbedding())
    hits = index.as_retriever(similarity_top_k=1).retrieve("kraft inequality prefix code")
    print(hits[0].node.ref_doc_id, hits[0].node.get_content(), flush=True)
""")


def test_index_from_documents_then_from_vector_store_in_another_process(tmp_path):
    docs = [
        Document(id_="kraft", text="a prefix code satisfies the kraft inequality"),
        Document(id_="time", text="special relativity dilates time for a moving clock"),
    ]
    store = QdrantEdgeVectorStore(path=tmp_path, collection_name="notes")
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=WordsEmbedding()
    )
    assert index.as_retriever(similarity_top_k=1).retrieve("moving clock time")[0].node.ref_doc_id == "time"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    locked = child.stdout.readline()
    assert locked.startswith("LOCKED") and repr(str(tmp_path / "notes")) in locked
    with pytest.raises(StorageLockedError):
        QdrantEdgeVectorStore(path=tmp_path, collection_name="notes").open()
    store.close()
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "kraft a prefix code satisfies the kraft inequality"
    assert child.wait(timeout=120) == 0


def test_point_ids():
    node_uuid = "0b8f5a8e-6a34-4d7e-9b3c-5b1f0c9f2d41"
    assert point_id(node_uuid) == node_uuid
    assert point_id("node-1") == point_id("node-1") != point_id("node-2")


def test_open_vector_store_engine_edge(tmp_path):
    from laser_integrations.qdrant import open_vector_store

    store = open_vector_store(engine="edge", path=tmp_path, collection="notes", embedding_dim=DIM)
    assert isinstance(store, QdrantEdgeVectorStore) and store.folder == tmp_path / "notes"
    store.add(_nodes(4))
    store.close()
    again = open_vector_store(engine="edge", path=tmp_path, collection="notes", embedding_dim=DIM)
    assert len(again.get_nodes()) == 4
    again.close()
    fresh = open_vector_store(engine="edge", path=tmp_path, collection="notes", embedding_dim=DIM, recreate=True)
    assert fresh.get_nodes() == []
    fresh.close()
    with pytest.raises(ValueError, match="cannot take location"):
        open_vector_store(engine="edge", location=":memory:", embedding_dim=DIM)
