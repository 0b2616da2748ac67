"""QdrantEdgeDocumentStore: Haystack's conformance suite, the mixins qdrant-haystack runs, and what Edge adds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.testing.document_store import (
    CountDocumentsByFilterTest,
    CountUniqueMetadataByFilterTest,
    DeleteAllTest,
    DeleteByFilterTest,
    DocumentStoreBaseTests,
    GetMetadataFieldMinMaxTest,
    GetMetadataFieldsInfoTest,
    GetMetadataFieldUniqueValuesTest,
    UpdateByFilterTest,
)

from qdrant_client import QdrantClient

from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
from laser_integrations.qdrant import CollectionDimensionError, CollectionLayoutError, StorageLockedError

qe = pytest.importorskip("qdrant_edge")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> QdrantEdgeDocumentStore:
    store = QdrantEdgeDocumentStore(path=tmp_path_factory.mktemp("edge"), embedding_dim=768, return_embedding=True)
    yield store
    store.close()


class TestConformance(
    DocumentStoreBaseTests,
    CountDocumentsByFilterTest,
    CountUniqueMetadataByFilterTest,
    DeleteAllTest,
    DeleteByFilterTest,
    GetMetadataFieldMinMaxTest,
    GetMetadataFieldUniqueValuesTest,
    GetMetadataFieldsInfoTest,
    UpdateByFilterTest,
):
    @pytest.fixture
    def document_store(self, shared_store: QdrantEdgeDocumentStore) -> QdrantEdgeDocumentStore:
        # One shard for the class, emptied before each test: opening and closing an Edge shard costs ~0.3 s.
        shared_store.delete_all_documents()
        assert shared_store.count_documents() == 0
        return shared_store

    # Overridden as qdrant-haystack overrides it: a cosine collection stores unit vectors, so a returned embedding
    # is the written one divided by its norm, and Document equality (which compares embeddings) cannot hold.
    # qdrant-haystack then compares ids only; this compares ids, content, meta and the embedding up to its norm.
    def assert_documents_are_equal(self, received: list[Document], expected: list[Document]) -> None:
        assert len(received) == len(expected)
        by_id = {d.id: d for d in received}
        assert set(by_id) == {d.id for d in expected}
        for want in expected:
            got = by_id[want.id]
            assert (got.content, got.meta) == (want.content, want.meta)
            if want.embedding is None:
                assert got.embedding is None
            else:
                unit = np.asarray(want.embedding) / np.linalg.norm(want.embedding)
                np.testing.assert_allclose(got.embedding, unit, rtol=1e-5, atol=1e-6)

    # Overridden as qdrant-haystack overrides it (the base test raises NotImplementedError): the default policy
    # fails on a duplicate, as QdrantDocumentStore's does.
    def test_write_documents(self, document_store: QdrantEdgeDocumentStore) -> None:
        docs = [Document(id="1")]
        assert document_store.write_documents(docs) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents(docs, DuplicatePolicy.FAIL)


# ---- what the Edge store adds: search, settings, folders, processes ----------------------------------------------

DIM = 8


def _docs(n: int, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM))
    return [
        Document(id=f"d{i}", content=f"text {i}", meta={"group": "even" if i % 2 == 0 else "odd", "rank": i},
                 embedding=vectors[i].tolist())
        for i in range(n)
    ]  # fmt: skip


def _exact(docs: list[Document], query: np.ndarray, keep=lambda d: True) -> list[tuple[str, float]]:
    """Cosine top list computed with numpy, independently of Qdrant."""
    scored = [
        (d.id, float(np.dot(d.embedding, query) / np.linalg.norm(d.embedding) / np.linalg.norm(query)))
        for d in docs
        if keep(d)
    ]
    return sorted(scored, key=lambda item: -item[1])


def test_query_by_embedding_matches_exact_cosine_with_filters(tmp_path):
    docs = _docs(40)
    store = QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=DIM)
    store.write_documents(docs)
    query = np.random.default_rng(1).standard_normal(DIM)

    hits = store.query_by_embedding(query.tolist(), top_k=5)
    want = _exact(docs, query)[:5]
    assert [h.id for h in hits] == [i for i, _ in want]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in want], atol=1e-5)
    assert all(h.embedding is None for h in hits)

    odd = {"field": "meta.group", "operator": "==", "value": "odd"}
    hits = store._query_by_embedding(query.tolist(), filters=odd, top_k=3, return_embedding=True, scale_score=True)
    want = _exact(docs, query, keep=lambda d: d.meta["group"] == "odd")[:3]
    assert [h.id for h in hits] == [i for i, _ in want]
    np.testing.assert_allclose([h.score for h in hits], [(s + 1) / 2 for _, s in want], atol=1e-5)
    assert all(len(h.embedding) == DIM for h in hits)

    threshold = want[1][1] - 1e-6
    assert [h.id for h in store.query_by_embedding(query.tolist(), filters=odd, score_threshold=threshold)] == [
        i for i, _ in want[:2]
    ]


def test_search_refuses_what_edge_cannot_do(tmp_path):
    store = QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=DIM)
    with pytest.raises(ValueError, match="group_by/group_size are not supported by Qdrant Edge"):
        store.query_by_embedding([0.0] * DIM, group_by="meta.group")
    with pytest.raises(ValueError, match="query embedding has 3 values, but the store holds vectors of dim 8"):
        store.query_by_embedding([0.0] * 3)
    with pytest.raises(ValueError, match="embedding of 3 values, but the store expects dim 8"):
        store.write_documents([Document(content="x", embedding=[0.1, 0.2, 0.3])])
    assert store.count_documents() == 0  # nothing half-written
    with pytest.raises(FilterError, match="cannot compare the field 'meta.tags' for equality with a list"):
        store.filter_documents({"field": "meta.tags", "operator": "==", "value": ["a"]})
    with pytest.raises(ValueError, match=r"Unknown hnsw_config key\(s\) \['ef'\]"):
        QdrantEdgeDocumentStore(path=tmp_path, hnsw_config={"ef": 10})
    with pytest.raises(ValueError, match="exactly one of the keys 'scalar', 'product', 'binary'"):
        QdrantEdgeDocumentStore(path=tmp_path, quantization_config={"int8": {}})
    store.close()


def test_duplicate_policies_write_all_or_nothing(tmp_path):
    store = QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=DIM)
    a, b, c = _docs(3)
    assert store.write_documents([a]) == 1
    with pytest.raises(DuplicateDocumentError, match=r"\['d0'\] already exist"):
        store.write_documents([b, a])
    assert store.count_documents() == 1  # b was not written either
    with pytest.raises(DuplicateDocumentError, match=r"\['d1'\]"):
        store.write_documents([b, b], policy=DuplicatePolicy.FAIL)
    assert store.write_documents([a, b, b, c], policy=DuplicatePolicy.SKIP) == 2
    changed = Document(id="d0", content="changed", embedding=a.embedding)
    assert store.write_documents([changed], policy=DuplicatePolicy.OVERWRITE) == 1
    assert {d.id: d.content for d in store.filter_documents()} == {"d0": "changed", "d1": "text 1", "d2": "text 2"}
    store.close()


def test_hnsw_quantization_and_payload_indexes_reach_the_shard(tmp_path):
    hnsw = {"m": 8, "ef_construct": 32, "full_scan_threshold": 1}
    quantization = {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    store = QdrantEdgeDocumentStore(
        path=tmp_path, index="tuned", embedding_dim=DIM, hnsw_config=hnsw, quantization_config=quantization,
        optimizers_config={"indexing_threshold": 1}, search_params={"hnsw_ef": 64, "quantization": {"rescore": True}},
        payload_fields_to_index=[{"field_name": "meta.group", "field_schema": "keyword"}],
    )  # fmt: skip
    docs = _docs(300)
    store.write_documents(docs)  # optimize_after_write builds HNSW (indexing_threshold is 1 KB)
    shard = store.open()
    info = shard.info()
    assert info.indexed_vectors_count >= 300
    assert info.payload_schema["meta.group"].data_type == qe.PayloadSchemaType.Keyword
    config = json.loads((tmp_path / "tuned" / "edge_config.json").read_text())
    assert config["hnsw_config"] == {**hnsw, "max_indexing_threads": 0}
    assert config["quantization_config"] == quantization
    assert config["optimizers"]["indexing_threshold"] == 1
    # the HNSW + quantized search with rescoring still finds the exact top hits on this small set
    query = np.random.default_rng(2).standard_normal(DIM)
    even = {"field": "meta.group", "operator": "==", "value": "even"}
    hits = store.query_by_embedding(query.tolist(), filters=even, top_k=5)
    assert [h.id for h in hits] == [i for i, _ in _exact(docs, query, keep=lambda d: d.meta["group"] == "even")[:5]]
    store.close()


def test_dimension_and_folder_checks(tmp_path):
    store = QdrantEdgeDocumentStore(path=tmp_path, index="docs", embedding_dim=DIM)
    store.write_documents(_docs(2))
    store.close()
    with pytest.raises(CollectionDimensionError, match=r"holds vectors of size 8, but 16 dimensions"):
        QdrantEdgeDocumentStore(path=tmp_path, index="docs", embedding_dim=16).count_documents()
    with pytest.raises(ValueError, match="compared by Cosine, not Dot"):
        QdrantEdgeDocumentStore(path=tmp_path, index="docs", embedding_dim=DIM, similarity="dot_product").open()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text("{}")
    with pytest.raises(FileExistsError, match="holds no Qdrant Edge shard.*refusing to create a shard beside its data"):
        QdrantEdgeDocumentStore(path=tmp_path, index="other", embedding_dim=DIM).open()
    with pytest.raises(FileExistsError, match="not a Qdrant Edge shard; refusing to delete it"):
        QdrantEdgeDocumentStore(path=tmp_path, index="other", embedding_dim=DIM, recreate_index=True).open()
    assert (tmp_path / "other" / "meta.json").exists()
    local = tmp_path / "local"
    QdrantClient(path=str(local)).close()  # a folder of qdrant-client's local mode (today's embedded store)
    with pytest.raises(FileExistsError, match="written by qdrant-client's local mode.*laser migrate --from-path"):
        QdrantEdgeDocumentStore(path=local, embedding_dim=DIM).open()
    assert not (local / "Document").exists()
    recreated = QdrantEdgeDocumentStore(path=tmp_path, index="docs", embedding_dim=16, recreate_index=True)
    assert recreated.count_documents() == 0
    recreated.write_documents([Document(content="new", embedding=[0.5] * 16)])
    recreated.close()
    assert recreated.count_documents() == 1  # reopening does not recreate again
    assert recreated.to_dict()["init_parameters"]["recreate_index"] is True
    recreated.close()


def test_to_dict_from_dict_round_trip(tmp_path):
    store = QdrantEdgeDocumentStore(
        path=tmp_path, index="x", embedding_dim=DIM, hnsw_config={"m": 8}, search_params={"hnsw_ef": 32},
        payload_fields_to_index=[{"field_name": "meta.group", "field_schema": "keyword"}],
    )  # fmt: skip
    data = store.to_dict()
    assert data["type"] == "haystack_integrations.document_stores.laser_edge.document_store.QdrantEdgeDocumentStore"
    assert data["init_parameters"]["hnsw_config"] == {"m": 8}
    again = QdrantEdgeDocumentStore.from_dict(data)
    assert again.to_dict() == data
    assert again._shard is None  # lazy


_CHILD = textwrap.dedent("""
    import os, sys
    from haystack import Document
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
    from laser_integrations.qdrant import StorageLockedError
    store = QdrantEdgeDocumentStore(path=sys.argv[1], embedding_dim=8)
    try:
        store.count_documents()
    except StorageLockedError as e:
        print("LOCKED", e, flush=True)
    sys.stdin.readline()  # the parent has closed its store
    print(sorted(d.id for d in store.filter_documents()), flush=True)
    store.write_documents([Document(id="child", content="kept", embedding=[1.0] * 8)])
    os._exit(9)  # killed: no close(), no flush
""")


def test_second_process_is_refused_reads_after_close_and_its_writes_survive_a_kill(tmp_path):
    store = QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=DIM)
    store.write_documents(_docs(3))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    locked = child.stdout.readline()
    assert locked.startswith("LOCKED")
    assert repr(str(tmp_path / "Document")) in locked and "call close() on the other store" in locked
    with pytest.raises(StorageLockedError, match="already opened by another process"):
        QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=DIM).count_documents()  # a second store in this one
    store.close()  # as a finished `laser index` does
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "['d0', 'd1', 'd2']"
    assert child.wait(timeout=120) == 9
    assert sorted(d.id for d in store.filter_documents()) == ["child", "d0", "d1", "d2"]
    store.close()


def test_laser_retriever_searches_an_edge_store(tmp_path, symmetric_encoder_dir):
    from haystack.utils import ComponentDevice

    from laser_integrations.haystack import LaSERDocumentEmbedder, LaSERRetriever

    texts = {"kraft": "a prefix code satisfies the kraft inequality", "time": "special relativity dilates time"}
    device = ComponentDevice.from_str("cpu")
    embedder = LaSERDocumentEmbedder(model=str(symmetric_encoder_dir), device=device, progress_bar=False)
    store = QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=64)
    store.write_documents(embedder.run([Document(id=k, content=t) for k, t in texts.items()])["documents"])
    retriever = LaSERRetriever(document_store=store, model=str(symmetric_encoder_dir), device=device, top_k=2)
    hits = retriever.run(query=texts["kraft"])["documents"]
    assert [h.id for h in hits] == ["kraft", "time"]
    q = retriever.encoder.encode_queries([texts["kraft"]])[0]
    d = retriever.encoder.encode_documents([texts[h.id] for h in hits])
    np.testing.assert_allclose([h.score for h in hits], d @ q, atol=1e-4)
    data = retriever.to_dict()
    assert data["init_parameters"]["document_store"]["type"].endswith(".QdrantEdgeDocumentStore")
    retriever.close()
    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever)
    loaded = Pipeline.loads(pipeline.dumps())  # haystack_integrations.* needs no deserialization allowlist
    assert isinstance(loaded.get_component("retriever").document_store, QdrantEdgeDocumentStore)
    again = LaSERRetriever.from_dict(data)
    assert isinstance(again.document_store, QdrantEdgeDocumentStore)
    assert [h.id for h in again.run(query=texts["time"], top_k=1)["documents"]] == ["time"]
    again.close()
    assert not math.isnan(hits[0].score)


def test_open_document_store_engine_edge(tmp_path):
    from laser_integrations.qdrant import open_document_store

    store = open_document_store(engine="edge", path=tmp_path, collection="docs", embedding_dim=DIM,
                                hnsw_config={"m": 8})  # fmt: skip
    assert isinstance(store, QdrantEdgeDocumentStore) and store.folder == tmp_path / "docs"
    assert store._shard is not None  # opened by the opener, so a lock or a size mismatch fails there
    store.write_documents(_docs(3))
    store.close()
    with pytest.raises(CollectionDimensionError, match="size 8, but the encoder embeds into 16 dimensions"):
        open_document_store(engine="edge", path=tmp_path, collection="docs", embedding_dim=16)
    recreated = open_document_store(engine="edge", path=tmp_path, collection="docs", embedding_dim=16, recreate=True)
    assert recreated.count_documents() == 0
    recreated.close()
    with pytest.raises(ValueError, match=r"engine='edge'\) opens an embedded Qdrant Edge folder.*take url"):
        open_document_store(engine="edge", url="http://localhost:6333", hybrid=True, embedding_dim=DIM)
    with pytest.raises(CollectionLayoutError, match=r"'docs' in Qdrant Edge folder .* without sparse BM25 vectors"):
        open_document_store(engine="edge", path=tmp_path, collection="docs", hybrid=True, embedding_dim=16)
    with pytest.raises(ValueError, match=r"engine must be one of \['auto', 'client', 'edge'\], got 'server'"):
        open_document_store(engine="server", location=":memory:", embedding_dim=DIM)


async def test_edge_embedding_retriever(tmp_path):
    from haystack_integrations.components.retrievers.laser_edge import QdrantEdgeEmbeddingRetriever

    docs = _docs(20)
    store = QdrantEdgeDocumentStore(path=tmp_path, embedding_dim=DIM)
    store.write_documents(docs)
    query = np.random.default_rng(3).standard_normal(DIM)
    even = {"field": "meta.group", "operator": "==", "value": "even"}
    retriever = QdrantEdgeEmbeddingRetriever(document_store=store, filters=even, top_k=3)
    want = [i for i, _ in _exact(docs, query, keep=lambda d: d.meta["group"] == "even")[:3]]
    assert [d.id for d in retriever.run(query_embedding=query.tolist())["documents"]] == want
    hits = (await retriever.run_async(query_embedding=query.tolist(), top_k=1))["documents"]
    assert [d.id for d in hits] == want[:1]
    data = retriever.to_dict()
    assert QdrantEdgeEmbeddingRetriever.from_dict(data).to_dict() == data
    with pytest.raises(ValueError, match="group_by/group_size are not supported by Qdrant Edge"):
        QdrantEdgeEmbeddingRetriever(document_store=store, group_by="meta.group")
    merging = QdrantEdgeEmbeddingRetriever(document_store=store, filters=qe.Filter(), filter_policy="merge")
    with pytest.raises(ValueError, match="Native qdrant_edge filters cannot be merged"):
        merging.run(query_embedding=query.tolist(), filters=even)
    store.close()


def test_bulk_load_builds_the_index_once_at_the_end_and_matches_exact_search(tmp_path, capfd):
    # As `laser index` loads Edge: optimizers off per write, one optimize() after the upload.
    store = QdrantEdgeDocumentStore(path=tmp_path, index="bulk", embedding_dim=DIM, optimize_after_write=False,
                                    hnsw_config={"m": 16, "ef_construct": 64, "full_scan_threshold": 1},
                                    optimizers_config={"indexing_threshold": 1}, search_params={"hnsw_ef": 256})  # fmt: skip
    docs = _docs(2000)
    for start in range(0, len(docs), 500):
        store.write_documents(docs[start : start + 500])
    assert store.open().info().indexed_vectors_count == 0  # nothing built during the upload
    assert store.optimize(progress_bar=True) is True
    info = store.open().info()
    assert info.indexed_vectors_count == info.points_count == 2000
    assert store.optimize() is False  # built once: nothing left to do
    # the new payload path (the embedding kept out of to_dict) stores the same document and vector
    back = QdrantEdgeDocumentStore(path=tmp_path, index="bulk", embedding_dim=DIM, return_embedding=True)
    store.close()
    (doc,) = back.get_documents_by_id([docs[7].id])
    assert (doc.content, doc.meta) == (docs[7].content, docs[7].meta)
    assert np.allclose(doc.embedding, np.asarray(docs[7].embedding) / np.linalg.norm(docs[7].embedding), atol=1e-6)
    for seed in range(10):
        query = np.random.default_rng(100 + seed).standard_normal(DIM)
        hits = back.query_by_embedding(query.tolist(), top_k=10)
        assert [h.id for h in hits] == [i for i, _ in _exact(docs, query)[:10]]
    back.close()
