"""Every collection knows which model filled it: writers refuse another model, readers refuse or warn (issue 22)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from laser_integrations import LaSERConfig, LaSEREncoder
from laser_integrations.cli.main import main
from laser_integrations.provenance import (
    CONTENT_HASH_FIELD,
    ProvenanceMismatchError,
    ProvenanceWarning,
    PROVENANCE_FILE,
    check_provenance,
    content_hash,
    describe_encoder,
    read_folder_provenance,
    weights_fingerprint,
    write_provenance,
)
from laser_integrations.qdrant import CollectionNotFoundError, open_client, open_document_store, open_vector_store
from laser_integrations.testing import tiny_encoder

SYMMETRIC = LaSERConfig(query_template="{text}", document_template="{text}", query_instruction="")
CORPUS = [
    {"_id": "primes", "text": "the prime numbers are divisible only by one and themselves"},
    {"_id": "kraft", "text": "a prefix code satisfies the kraft inequality"},
    {"_id": "entropy", "text": "entropy measures the average information of a random variable"},
]


@pytest.fixture(scope="module")
def model_b(tmp_path_factory):
    """A second tiny checkpoint of the same width (64) as ``symmetric_encoder_dir``, with other weights."""
    folder = tmp_path_factory.mktemp("models") / "tiny-b"
    tiny_encoder("qwen3", config=SYMMETRIC, seed=7).save_pretrained(folder)
    return folder


def write_corpus(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def stored(path, collection="docs"):
    """(record, {id: (text, embedding)}) of an embedded (Qdrant Edge) collection, read directly from its shard."""
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

    store = QdrantEdgeDocumentStore(path, index=collection, embedding_dim=64, return_embedding=True)
    try:
        return read_folder_provenance(store.folder), {
            d.id: (d.content, np.asarray(d.embedding)) for d in store.filter_documents()
        }
    finally:
        store.close()


def test_repro_1_another_model_is_refused_and_nothing_stale_is_returned(
    symmetric_encoder_dir, model_b, tmp_path, capsys
):
    a, b, q = str(symmetric_encoder_dir), str(model_b), str(tmp_path / "q")
    corpus = write_corpus(tmp_path / "c.jsonl", CORPUS)
    assert main(["index", str(corpus), "--model", a, "--path", q, "--collection", "docs"]) == 0
    record, before = stored(q)
    assert record["checkpoint"] == a and record["dimension"] == 64 and record["num_thinking_steps"] == 3
    # Kept beside the Edge shard, written by a rename (no temporary file left behind).
    assert sorted(p.name for p in (tmp_path / "q" / "docs").glob("laser_provenance*")) == [PROVENANCE_FILE]
    capsys.readouterr()

    # Writer with model B: refused, names --recreate, and the collection is exactly as it was.
    assert main(["index", str(corpus), "--model", b, "--path", q, "--collection", "docs"]) == 2
    err = capsys.readouterr().err
    assert "weights fingerprint" in err and "--recreate" in err and "Traceback" not in err
    record_after, after = stored(q)
    assert record_after == record
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key][1], before[key][1])

    # The several-worker path refuses it the same way, with the same exit code.
    assert main(["index", str(corpus), "--model", b, "--path", q, "--collection", "docs", "--processes", "1"]) == 2
    err = capsys.readouterr().err
    assert "weights fingerprint" in err and "--recreate" in err
    assert stored(q)[0] == record

    # Reader with model B: refused; with the explicit opt-in, a warning on stderr and results.
    assert main(["search", "kraft inequality", "--model", b, "--path", q, "--collection", "docs"]) == 2
    assert "--allow-model-mismatch" in capsys.readouterr().err
    assert main(["search", "kraft", "--model", b, "--path", q, "--collection", "docs", "--allow-model-mismatch"]) == 0
    out = capsys.readouterr()
    assert "laser search: warning:" in out.err and "searching anyway" in out.err
    assert len(out.out.strip().splitlines()) == 3

    # Rebuilt with B, B finds each document by its own text (score 1: the vectors are B's).
    assert main(["index", str(corpus), "--model", b, "--path", q, "--collection", "docs", "--recreate"]) == 0
    capsys.readouterr()
    assert main(["search", CORPUS[2]["text"], "--model", b, "--path", q, "--collection", "docs", "--json", "--top-k", "1"]) == 0
    hit = json.loads(capsys.readouterr().out)
    assert hit["id"] == "entropy" and hit["score"] == pytest.approx(1.0, abs=1e-3)
    assert stored(q)[0]["checkpoint"] == b


def test_changed_text_is_re_embedded_and_counted(symmetric_encoder_dir, tmp_path, capsys):
    common = ["--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "q"), "--collection", "docs"]
    assert main(["index", str(write_corpus(tmp_path / "c.jsonl", CORPUS)), *common]) == 0
    changed = [CORPUS[0], {"_id": "kraft", "text": "huffman codes are optimal prefix codes"}, CORPUS[2]]
    capsys.readouterr()
    assert main(["index", str(write_corpus(tmp_path / "c.jsonl", changed)), *common]) == 0
    assert "Indexed 0 new documents (2 already present, 1 re-embedded because their text changed)" in capsys.readouterr().out
    _, points = stored(tmp_path / "q")
    assert points["kraft"][0] == changed[1]["text"]
    encoder = LaSEREncoder.from_pretrained(symmetric_encoder_dir)
    expected = encoder.encode_documents([changed[1]["text"]])[0]
    np.testing.assert_allclose(points["kraft"][1], expected, atol=1e-5)  # the new text's vector, not the old one
    # A third run with the same texts embeds nothing.
    assert main(["index", str(tmp_path / "c.jsonl"), *common]) == 0
    assert "Indexed 0 new documents (3 already present, 0 re-embedded" in capsys.readouterr().out


@pytest.mark.parametrize(("option", "difference"), [(["--num-thinking-steps", "2"], "num_thinking_steps: collection 3"),
                                                    (["--no-title"], "embedded_fields: collection ['title']")])
def test_another_document_format_is_refused(symmetric_encoder_dir, tmp_path, capsys, option, difference):
    common = ["--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "q"), "--collection", "docs"]
    corpus = str(write_corpus(tmp_path / "c.jsonl", CORPUS))
    assert main(["index", corpus, *common]) == 0
    capsys.readouterr()
    assert main(["index", corpus, *common, *option]) == 2
    err = capsys.readouterr().err
    assert difference in err and "--recreate" in err


def test_a_collection_without_a_record_cannot_be_added_to_and_warns_readers(symmetric_encoder_dir, tmp_path, capsys):
    from haystack import Document

    store = open_document_store(path=tmp_path / "q", collection="docs", embedding_dim=64)  # no provenance given
    store.write_documents([Document(id="x", content="text", embedding=[1.0] + [0.0] * 63)])
    store.close()
    common = ["--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "q"), "--collection", "docs"]
    assert main(["index", str(write_corpus(tmp_path / "c.jsonl", CORPUS)), *common]) == 2
    assert "holds 1 points but records no model" in capsys.readouterr().err
    assert main(["search", "text", *common]) == 0
    assert "records no model" in capsys.readouterr().err


def test_fingerprint_follows_the_files_not_the_path_or_dtype(symmetric_encoder_dir, model_b, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(symmetric_encoder_dir, copy)
    a = LaSEREncoder.from_pretrained(symmetric_encoder_dir)
    assert weights_fingerprint(LaSEREncoder.from_pretrained(copy)) == weights_fingerprint(a)
    assert weights_fingerprint(LaSEREncoder.from_pretrained(copy, dtype="bfloat16")) == weights_fingerprint(a)
    assert weights_fingerprint(LaSEREncoder.from_pretrained(model_b)) != weights_fingerprint(a)
    # Built in memory (no files): the parameters are fingerprinted.
    assert weights_fingerprint(tiny_encoder(seed=1)) != weights_fingerprint(tiny_encoder(seed=2))


def test_check_provenance_is_a_pure_function_for_workers(symmetric_encoder_dir):
    record = describe_encoder(LaSEREncoder.from_pretrained(symmetric_encoder_dir))
    check_provenance(record, dict(record), role="writer", collection="c")  # same: nothing raised
    check_provenance(None, record, role="writer", collection="c", points=0)  # an empty collection is adopted
    other = {**record, "laser_config": {**record["laser_config"], "document_template": "passage: {text}"}}
    with pytest.raises(ProvenanceMismatchError, match=r"laser_config.document_template: collection '\{text\}'"):
        check_provenance(record, other, role="reader", collection="c")
    with pytest.warns(ProvenanceWarning, match="searching anyway"):
        check_provenance(record, other, role="reader", collection="c", allow_mismatch=True)
    with pytest.raises(ProvenanceMismatchError, match="precision: collection 'int8', this encoder 'float32'"):
        check_provenance({**record, "precision": "int8"}, record, role="reader", collection="c")
    # The library version and the name the checkpoint was given by are recorded but do not matter.
    check_provenance(record, {**record, "checkpoint": "elsewhere", "library_version": "9"}, role="writer", collection="c")


def test_a_server_that_drops_metadata_is_reported(monkeypatch):
    client = open_client(location=":memory:")
    from qdrant_client import models

    client.create_collection("c", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    monkeypatch.setattr(client, "update_collection", lambda *a, **k: True)  # an old server ignores metadata
    with pytest.warns(ProvenanceWarning, match="does not keep collection metadata"):
        assert write_provenance(client, "c", {"dimension": 4}) is False


def test_llama_index_store_records_checks_and_reads_only(symmetric_encoder_dir, model_b, tmp_path):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode

    from laser_integrations.llama_index import LaSEREmbedding

    a, b = LaSEREmbedding(str(symmetric_encoder_dir)), LaSEREmbedding(str(model_b))
    path = tmp_path / "q"
    with pytest.raises(CollectionNotFoundError, match="does not exist"):
        open_vector_store(path=path, collection="notes", embed_model=a, read_only=True)
    assert not path.exists()  # read_only created nothing
    store = open_vector_store(path=path, collection="notes", embed_model=a)  # creates the collection, records a
    node = TextNode(text=CORPUS[0]["text"], id_="a8c6b5c2-1b1e-4b8e-9f7a-3f4f6c9d2e11")
    VectorStoreIndex([node], storage_context=StorageContext.from_defaults(vector_store=store), embed_model=a)
    assert read_folder_provenance(store.folder)["layout"] == "llama_index"
    store.close()
    with pytest.raises(ProvenanceMismatchError, match="weights fingerprint"):
        open_vector_store(path=path, collection="notes", embed_model=b)
    open_vector_store(path=path, collection="notes", embedding_dim=64).close()  # the refused opener released it
    with pytest.warns(ProvenanceWarning, match="searching anyway"):
        store = open_vector_store(path=path, collection="notes", embed_model=b, read_only=True, allow_model_mismatch=True)
    store.close()
    store = open_vector_store(path=path, collection="notes", embed_model=a, read_only=True)
    hits = VectorStoreIndex.from_vector_store(store, embed_model=a).as_retriever(similarity_top_k=1).retrieve(node.text)
    assert hits[0].node.node_id == node.node_id and hits[0].score == pytest.approx(1.0, abs=1e-3)
    store.close()
    assert read_folder_provenance(path / "notes")["checkpoint"] == str(symmetric_encoder_dir)  # readers left it


def test_content_hash_is_stored_with_each_document(symmetric_encoder_dir, tmp_path):
    common = ["--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "q"), "--collection", "docs"]
    assert main(["index", str(write_corpus(tmp_path / "c.jsonl", CORPUS[:1])), *common]) == 0
    store = open_document_store(path=tmp_path / "q", collection="docs", embedding_dim=64)
    try:
        (document,) = store.filter_documents()
    finally:
        store.close()
    assert document.meta[CONTENT_HASH_FIELD] == content_hash("", CORPUS[0]["text"])  # no title: "" and the text


@pytest.mark.parametrize("where", ["memory", "edge"])
def test_retriever_refuses_another_model_and_round_trips_the_opt_in(symmetric_encoder_dir, model_b, tmp_path, where):
    from haystack import Document
    from haystack.utils import ComponentDevice

    from laser_integrations.haystack import LaSERDocumentEmbedder, LaSERRetriever
    from laser_integrations.provenance import provenance_of

    cpu = ComponentDevice.from_str("cpu")
    embedder = LaSERDocumentEmbedder(model=str(symmetric_encoder_dir), device=cpu, progress_bar=False)
    at = {"location": ":memory:"} if where == "memory" else {"path": tmp_path / "q"}  # qdrant-client / Qdrant Edge
    store = open_document_store(**at, collection="r", embedding_dim=64, provenance=provenance_of(embedder))
    store.write_documents(embedder.run([Document(id="p", content=CORPUS[0]["text"])])["documents"])
    retriever = LaSERRetriever(document_store=store, model=str(model_b), device=cpu)
    with pytest.raises(ProvenanceMismatchError, match="weights fingerprint"):
        retriever.run("primes")
    with pytest.raises(ProvenanceMismatchError):  # still refused on the next call: the failed warm-up is not kept
        retriever.run("primes")
    lenient = LaSERRetriever(document_store=store, model=str(model_b), device=cpu, allow_model_mismatch=True)
    assert LaSERRetriever.from_dict(lenient.to_dict()).allow_model_mismatch is True
    with pytest.warns(ProvenanceWarning, match="searching anyway"):
        assert len(lenient.run("primes")["documents"]) == 1
    hits = LaSERRetriever(document_store=store, model=str(symmetric_encoder_dir), device=cpu).run(CORPUS[0]["text"])
    assert hits["documents"][0].score == pytest.approx(1.0, abs=1e-3)


def test_hybrid_search_refuses_another_model_too(symmetric_encoder_dir, model_b, tmp_path, capsys):
    corpus = str(write_corpus(tmp_path / "c.jsonl", CORPUS))
    where = ["--path", str(tmp_path / "q"), "--collection", "docs"]  # Qdrant Edge, the default engine
    assert main(["index", corpus, "--model", str(symmetric_encoder_dir), *where, "--hybrid", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "kraft", "--model", str(model_b), *where, "--hybrid"]) == 2
    assert "weights fingerprint" in capsys.readouterr().err
    assert main(["search", CORPUS[1]["text"], "--model", str(symmetric_encoder_dir), *where, "--hybrid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["id"] == "kraft"
