"""Drop-in for the anchors: sentence-transformers-haystack's embedders, QdrantEmbeddingRetriever, HuggingFaceEmbedding.

Each anchor parameter is either honoured with the anchor's meaning (values checked against an independent
computation: the encoder itself, sentence-transformers' own quantize_embeddings) or refused with a message that
names it and says why.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np
import pytest
import torch
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import ComponentDevice
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder,
    SentenceTransformersTextEmbedder,
)
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from qdrant_client.http import models
from sentence_transformers import quantize_embeddings as st_quantize_embeddings

from laser_integrations import LaSERConfig, LaSEREncoder, backend
from laser_integrations.config import QWEN3_EMPTY_THINK
from laser_integrations.haystack import LaSERDocumentEmbedder, LaSERRetriever, LaSERTextEmbedder
from laser_integrations.llama_index import LaSEREmbedding
from laser_integrations.qdrant import open_document_store

CPU = ComponentDevice.from_str("cpu")
TEXTS = [
    "the prime numbers are divisible only by one and themselves",
    "a prefix code satisfies the kraft inequality",
    "entropy measures the average information of a random variable",
    "special relativity dilates time for a moving clock",
    "bayes theorem updates a prior with a likelihood",
]
LONG = " ".join(TEXTS * 6)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# -- every anchor parameter exists here ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("anchor", "ours"),
    [
        (SentenceTransformersTextEmbedder, LaSERTextEmbedder),
        (SentenceTransformersDocumentEmbedder, LaSERDocumentEmbedder),
        (QdrantEmbeddingRetriever, LaSERRetriever),
    ],
)
def test_every_anchor_init_and_run_parameter_exists(anchor, ours):
    for method in ("__init__", "run"):
        theirs = set(inspect.signature(getattr(anchor, method)).parameters) - {"self", "query_embedding"}
        mine = set(inspect.signature(getattr(ours, method)).parameters)
        assert theirs - mine == set(), f"{ours.__name__}.{method} lacks {sorted(theirs - mine)}"


def test_every_huggingface_embedding_parameter_is_declared_or_refused_by_name():
    theirs = set(inspect.signature(HuggingFaceEmbedding.__init__).parameters) - {"self", "model_kwargs"}
    mine = set(inspect.signature(LaSEREmbedding.__init__).parameters)
    for name in sorted(theirs - mine):  # the deprecated ones
        with pytest.raises(TypeError, match=rf"'{name}': deprecated in HuggingFaceEmbedding too"):
            LaSEREmbedding("m", **{name: "x"})


# -- truncate_dim, precision, normalize (values against the encoder and sentence-transformers) -------------------
def test_truncate_dim_cuts_then_normalises_like_sentence_transformers(encoder, encoder_dir):
    raw = encoder.encode_documents(TEXTS, normalize=False)
    got = LaSERDocumentEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, truncate_dim=16).run(
        [Document(content=t) for t in TEXTS]
    )["documents"]
    np.testing.assert_allclose([d.embedding for d in got], unit(raw[:, :16]), atol=1e-5)
    unnormalised = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, truncate_dim=16,
                                     normalize_embeddings=False).run(TEXTS[0])["embedding"]  # fmt: skip
    np.testing.assert_allclose(unnormalised, encoder.encode_queries(TEXTS[:1], normalize=False)[0, :16], atol=1e-5)


def test_truncate_dim_larger_than_the_model_fails_before_embedding(encoder_dir):
    embedder = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, truncate_dim=65)
    with pytest.raises(ValueError, match=r"truncate_dim=65 is larger than .* dimension 64"):
        embedder.warm_up()


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_equals_sentence_transformers_quantize_embeddings(encoder, encoder_dir, precision):
    floats = encoder.encode_documents(TEXTS)
    embedder = LaSERDocumentEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, precision=precision)
    got = [d.embedding for d in embedder.run([Document(content=t) for t in TEXTS])["documents"]]
    expected = st_quantize_embeddings(floats, precision=precision)
    assert np.asarray(got).shape == expected.shape
    np.testing.assert_array_equal(got, expected.tolist())


def test_text_embedder_int8_needs_ranges_and_uses_them(encoder, encoder_dir):
    with pytest.raises(ValueError, match="Precision 'int8' requires `quantization_ranges`"):
        LaSERTextEmbedder(model=str(encoder_dir), precision="int8")
    sample = encoder.encode_queries(TEXTS)
    ranges = np.vstack([sample.min(0), sample.max(0)]).tolist()
    embedder = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, precision="int8",
                                 quantization_ranges=ranges)  # fmt: skip
    got = embedder.run(TEXTS[1])["embedding"]
    alone = embedder.encoder.encode_queries(TEXTS[1:2])  # the same floats (a batch of one pads differently)
    expected = st_quantize_embeddings(alone, precision="int8", ranges=np.asarray(ranges))[0]
    np.testing.assert_array_equal(got, expected.tolist())
    with pytest.raises(ValueError, match="Invalid precision 'int4'. Valid precisions are"):
        LaSERTextEmbedder(model="m", precision="int4")
    with pytest.raises(ValueError, match=r"quantization_ranges must have shape \(2, embedding_dim\)"):
        LaSERTextEmbedder(model="m", precision="int8", quantization_ranges=[[0.0, 1.0]])


# -- sequence length, config_kwargs, backend, encode_kwargs -------------------------------------------------------
def test_tokenizer_model_max_length_is_the_components_budget(encoder, encoder_dir, monkeypatch):
    widths: list[int] = []
    real = LaSEREncoder.embed_token_ids

    def spy(self, batch, *args, **kwargs):
        widths.extend(len(ids) for ids in batch)
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(LaSEREncoder, "embed_token_ids", spy)
    capped = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False,
                               tokenizer_kwargs={"model_max_length": 120}).run(LONG)["embedding"]  # fmt: skip
    assert widths == [120]
    np.testing.assert_allclose(capped, encoder.encode_queries([LONG], max_length=120)[0], atol=1e-5)
    widths.clear()
    full = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False).run(LONG)["embedding"]
    assert widths[0] > 120 and not np.allclose(capped, full, atol=1e-3)
    with pytest.raises(ValueError, match=r"tokenizer_kwargs\['model_max_length'\] must be a positive number"):
        LaSERDocumentEmbedder(model="m", tokenizer_kwargs={"model_max_length": 0})


def test_config_kwargs_override_the_model_config_and_typos_are_refused(encoder_dir):
    backend.clear_encoder_cache()
    changed = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False,
                                config_kwargs={"rms_norm_eps": 0.5})  # fmt: skip
    plain = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False)
    assert not np.allclose(changed.run("entropy")["embedding"], plain.run("entropy")["embedding"], atol=1e-4)
    assert changed.encoder.model.config.rms_norm_eps == 0.5 and changed.encoder is not plain.encoder
    with pytest.raises(ValueError, match=r"config_kwargs \['rms_norm_epsilon'\] are not attributes of Qwen3Config"):
        LaSERTextEmbedder(model=str(encoder_dir), device=CPU, config_kwargs={"rms_norm_epsilon": 0.5}).warm_up()


@pytest.mark.parametrize("cls", [LaSERTextEmbedder, LaSERDocumentEmbedder])
def test_backend_other_than_torch_is_refused_with_the_reason(cls):
    assert cls(model="m", backend="torch").backend == "torch"
    with pytest.raises(ValueError, match="backend='onnx' is not supported.*latent thinking steps.*backend='torch'"):
        cls(model="m", backend="onnx")


@pytest.mark.parametrize(
    ("encode_kwargs", "match"),
    [
        ({"prompt_name": "query"}, "'prompt_name': LaSER has no named prompts.*instruction"),
        ({"batch_size": 4}, "'batch_size' is set by the component's batch_size"),
        ({"normalize_embeddings": True}, "'normalize_embeddings': set the component's `normalize_embeddings`"),
        ({"device": ["cpu", "cpu"]}, r"set the component.s `device` \(one device\) or `devices`"),
        ({"nromalize": True}, "'nromalize' is not a LaSEREncoder.encode keyword"),
    ],
)
def test_encode_kwargs_that_cannot_be_honoured_are_refused(encode_kwargs, match):
    with pytest.raises(ValueError, match=match):
        LaSERDocumentEmbedder(model="m", encode_kwargs=encode_kwargs)
    assert LaSERDocumentEmbedder(model="m", encode_kwargs={}).encode_kwargs == {}


def test_new_parameters_round_trip():
    embedder = LaSERDocumentEmbedder(
        model="m", truncate_dim=32, config_kwargs={"rms_norm_eps": 0.1}, precision="ubinary", encode_kwargs={},
        backend="torch", tokenizer_kwargs={"model_max_length": 77}, model_kwargs={"dtype": torch.float16},
    )  # fmt: skip
    data = embedder.to_dict()
    params = data["init_parameters"]
    assert (params["truncate_dim"], params["precision"]) == (32, "ubinary")
    assert params["config_kwargs"] == {"rms_norm_eps": 0.1}
    assert LaSERDocumentEmbedder.from_dict(data).to_dict() == data
    ranges = [[-1.0] * 64, [1.0] * 64]
    text = LaSERTextEmbedder(model="m", precision="uint8", quantization_ranges=ranges, truncate_dim=64)
    assert LaSERTextEmbedder.from_dict(text.to_dict()).quantization_ranges == ranges


# -- one model per checkpoint, device and dtype --------------------------------------------------------------------
def test_one_model_per_checkpoint_device_and_dtype_whatever_the_spelling(encoder_dir, monkeypatch):
    backend.clear_encoder_cache()
    loads: list[str] = []
    real = LaSEREncoder.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(str(kwargs.get("dtype")))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(LaSEREncoder, "from_pretrained", classmethod(counting))
    spellings = [None, {"dtype": torch.float32}, {"dtype": "float32"}, {"torch_dtype": "torch.float32"},
                 {"dtype": "fp32"}]  # fmt: skip
    components = [
        LaSERTextEmbedder(model=str(encoder_dir), device=CPU, model_kwargs=kw, normalize_embeddings=bool(i % 2))
        for i, kw in enumerate(spellings)
    ]
    components.append(
        LaSERDocumentEmbedder(model=str(encoder_dir), device=CPU, tokenizer_kwargs={"model_max_length": 9})
    )
    for component in components:
        component.warm_up()
    llama = LaSEREmbedding(str(encoder_dir), device="cpu", normalize=False, max_length=40)
    assert len({id(c.encoder) for c in components} | {id(llama.encoder)}) == 1
    half = [LaSERTextEmbedder(model=str(encoder_dir), device=CPU, model_kwargs={"dtype": d})
            for d in (torch.bfloat16, "bfloat16", "torch.bfloat16")]  # fmt: skip
    for component in half:
        component.warm_up()
    assert half[0].encoder is half[1].encoder is half[2].encoder and half[0].encoder.dtype == torch.bfloat16
    assert loads == ["torch.float32", "torch.bfloat16"]
    assert backend.loaded_encoder_count() == 2


# -- LaSERRetriever: QdrantEmbeddingRetriever's run-time parameters and errors ------------------------------------
@pytest.fixture(scope="module")
def store(symmetric_encoder_dir):
    store = open_document_store(location=":memory:", collection="anchors", embedding_dim=64)
    docs = [Document(id=f"d{i}", content=t, meta={"topic": "odd" if i % 2 else "even"}) for i, t in enumerate(TEXTS)]
    embedder = LaSERDocumentEmbedder(model=str(symmetric_encoder_dir), device=CPU, progress_bar=False)
    store.write_documents(embedder.run(docs)["documents"], policy=DuplicatePolicy.OVERWRITE)
    return store


async def test_retriever_run_time_parameters_match_qdrant_embedding_retriever(store, symmetric_encoder_dir):
    retriever = LaSERRetriever(document_store=store, model=str(symmetric_encoder_dir), device=CPU, top_k=5)
    await retriever.warm_up_async()
    assert retriever.encoder is not None
    query = TEXTS[2]
    reference = QdrantEmbeddingRetriever(document_store=store, top_k=5)
    embedding = retriever.encoder.encode_queries([query]).tolist()[0]
    for kwargs in [
        {},
        {"scale_score": True},
        {"return_embedding": True},
        {"score_threshold": 0.3},
        {"group_by": "meta.topic", "group_size": 1},
        {"top_k": 2, "filters": {"field": "meta.topic", "operator": "==", "value": "even"}},
    ]:
        got = retriever.run(query=query, **kwargs)["documents"]
        want = reference.run(query_embedding=embedding, **kwargs)["documents"]
        # Scores to 1e-5, not rounded to 5 decimals: two encodes of one query may differ by float rounding (1e-7),
        # which can fall either side of a rounding boundary.
        assert [d.id for d in got] == [d.id for d in want], kwargs
        assert [d.score for d in got] == pytest.approx([d.score for d in want], abs=1e-5), kwargs
        assert all((d.embedding is not None) == bool(kwargs.get("return_embedding")) for d in got), (kwargs, got)
        got_async = (await retriever.run_async(query=query, **kwargs))["documents"]
        assert [d.id for d in got_async] == [d.id for d in got]
    grouped = retriever.run(query=query, group_by="meta.topic", group_size=1)["documents"]
    assert sorted(d.meta["topic"] for d in grouped) == ["even", "odd"]
    raw = retriever.run(query=query)["documents"]
    scaled = retriever.run(query=query, scale_score=True)["documents"]
    np.testing.assert_allclose([d.score for d in scaled], [(d.score + 1) / 2 for d in raw], atol=1e-6)  # cosine


def test_retriever_init_group_by_round_trip_and_anchor_errors(store, symmetric_encoder_dir):
    retriever = LaSERRetriever(document_store=store, model=str(symmetric_encoder_dir), device=CPU,
                               group_by="meta.topic", group_size=2, top_k=1)  # fmt: skip
    data = retriever.to_dict()
    assert (data["init_parameters"]["group_by"], data["init_parameters"]["group_size"]) == ("meta.topic", 2)
    assert LaSERRetriever.from_dict(data).to_dict() == data
    hits = retriever.run(query=TEXTS[0])["documents"]  # top_k counts groups: 1 group of up to 2
    assert [d.meta["topic"] for d in hits] == ["even", "even"]
    merge = LaSERRetriever(document_store=store, model=str(symmetric_encoder_dir), device=CPU, filter_policy="merge")
    native = models.Filter(must=[models.FieldCondition(key="meta.topic", match=models.MatchValue(value="odd"))])
    with pytest.raises(ValueError, match="Native Qdrant filters cannot be used with filter_policy set to MERGE"):
        merge.run(query="x", filters=native)
    with pytest.raises(ValueError, match="must be a QdrantDocumentStore"):  # the anchor raises ValueError too
        LaSERRetriever(document_store=InMemoryDocumentStore())


# -- porting a sentence-transformers-haystack pipeline: only the types change ---------------------------------------
ST_DOC = f"{SentenceTransformersDocumentEmbedder.__module__}.SentenceTransformersDocumentEmbedder"
ST_TEXT = f"{SentenceTransformersTextEmbedder.__module__}.SentenceTransformersTextEmbedder"
OUR_DOC = "haystack_integrations.components.embedders.laser.document_embedder.LaSERDocumentEmbedder"
OUR_TEXT = "haystack_integrations.components.embedders.laser.text_embedder.LaSERTextEmbedder"


def anchor_pipelines(model: str) -> tuple[str, str]:
    """An indexing and a query pipeline built with the anchor's components (non-default parameters), as YAML."""
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    indexing = Pipeline()
    indexing.add_component("embedder", SentenceTransformersDocumentEmbedder(
        model=model, device=CPU, prefix="passage: ", batch_size=2, progress_bar=False, normalize_embeddings=True,
        meta_fields_to_embed=["title"], embedding_separator=" | ", truncate_dim=48,
        model_kwargs={"torch_dtype": torch.float32}, tokenizer_kwargs={"model_max_length": 64}, encode_kwargs={},
        backend="torch", revision=None, local_files_only=True,
    ))  # fmt: skip
    indexing.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    indexing.connect("embedder", "writer")
    query = Pipeline()
    query.add_component("embedder", SentenceTransformersTextEmbedder(
        model=model, device=CPU, prefix="query: ", progress_bar=False, normalize_embeddings=True, truncate_dim=48,
        tokenizer_kwargs={"model_max_length": 64}, local_files_only=True,
    ))  # fmt: skip
    query.add_component("retriever", InMemoryEmbeddingRetriever(store, top_k=2))
    query.connect("embedder.embedding", "retriever.query_embedding")
    return indexing.dumps(), query.dumps()


def test_anchor_pipeline_yaml_with_only_the_types_swapped_loads_and_runs(symmetric_encoder_dir):
    indexing_yaml, query_yaml = anchor_pipelines(str(symmetric_encoder_dir))
    assert ST_DOC in indexing_yaml and ST_TEXT in query_yaml
    indexing = Pipeline.loads(indexing_yaml.replace(ST_DOC, OUR_DOC))
    query = Pipeline.loads(query_yaml.replace(ST_TEXT, OUR_TEXT))
    docs = [Document(id=f"d{i}", content=t, meta={"title": f"t{i}"}) for i, t in enumerate(TEXTS)]
    assert indexing.run({"embedder": {"documents": docs}})["writer"]["documents_written"] == len(TEXTS)
    embedder = indexing.get_component("embedder")
    assert isinstance(embedder, LaSERDocumentEmbedder) and embedder.embedding_separator == " | "
    # the stored vector is what the encoder gives for the same text and settings
    stored = embedder.run(docs[:1])["documents"][0].embedding
    raw = embedder.encoder.encode_documents(["passage: t0 | " + TEXTS[0]], normalize=False, max_length=64)
    np.testing.assert_allclose(stored, unit(raw[:, :48])[0], atol=1e-5)
    hits = query.run({"embedder": {"text": TEXTS[3]}})["retriever"]["documents"]
    assert len(hits) == 2 and len(hits[0].embedding or stored) == 48


@pytest.mark.parametrize(("anchor_type", "our_type"), [(ST_DOC, OUR_DOC), (ST_TEXT, OUR_TEXT)])
def test_a_typo_in_a_component_keyword_is_an_error(symmetric_encoder_dir, anchor_type, our_type):
    indexing_yaml, query_yaml = anchor_pipelines(str(symmetric_encoder_dir))
    text = (indexing_yaml if anchor_type == ST_DOC else query_yaml).replace(anchor_type, our_type)
    typo = text.replace("normalize_embeddings: true", "normalise_embeddings: true")
    with pytest.raises(Exception, match="normalise_embeddings"):
        Pipeline.loads(typo)


# -- LlamaIndex: HuggingFaceEmbedding constructor calls with only the class swapped --------------------------------
def test_huggingface_embedding_call_with_the_class_swapped_works(encoder, encoder_dir, tmp_path):
    kwargs = dict(
        max_length=64, query_instruction="Find theorems", text_instruction=None, normalize=False, embed_batch_size=4,
        cache_folder=str(tmp_path), trust_remote_code=False, device="cpu", show_progress_bar=False,
        parallel_process=False, target_devices=None, truncate_dim=32, model_kwargs={"torch_dtype": torch.float32},
        revision=None, local_files_only=True,
    )  # fmt: skip
    model = LaSEREmbedding(str(encoder_dir), **kwargs)
    assert model.dimension == 32
    query = model.get_query_embedding(LONG)
    expected = encoder.encode_queries([LONG], instruction="Find theorems", normalize=False, max_length=64)[0, :32]
    np.testing.assert_allclose(query, expected, atol=1e-5)
    texts = model.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(texts, encoder.encode_documents(TEXTS, normalize=False)[:, :32], atol=1e-5)
    again = LaSEREmbedding.from_json(model.to_json())
    assert again.to_dict() == model.to_dict() and again.encoder is model.encoder
    assert again.model_kwargs == {"torch_dtype": "float32"}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"normalise": True}, TypeError, "'normalise' is not a parameter; did you mean 'normalize'"),
        ({"show_progressbar": True}, TypeError, "did you mean 'show_progress_bar'"),
        ({"token": "hf_x"}, TypeError, "'token': a hub token is read only from the HF_TOKEN environment variable"),
        ({"prompts": {"query": "q: "}}, TypeError, "'prompts': LaSER has no prompts: use query_instruction"),
        ({"target_devices": ["cpu:0", "cpu:1"]}, ValueError, "used only with parallel_process=True"),
        ({"parallel_process": True, "target_devices": ["gpu0"]}, ValueError, "Invalid device 'gpu0'.*'cpu:0'"),
        ({"devices": ["cpu:0"]}, TypeError, "'devices': named target_devices here"),
        ({"backend": "openvino"}, ValueError, "backend='openvino' is not supported"),
        ({"tokenizer_kwargs": {"model_max_length": 9}}, ValueError, "max_length=N"),
    ],
)
def test_huggingface_embedding_keywords_that_cannot_work_fail_naming_the_parameter(kwargs, error, match):
    with pytest.raises(error, match=match):
        LaSEREmbedding("never/loaded", **kwargs)


def test_secret_token_is_never_in_the_error(caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(TypeError) as raised:
        LaSEREmbedding("never/loaded", token="hf_very_secret")
    assert "hf_very_secret" not in str(raised.value) and "hf_very_secret" not in caplog.text


# -- LaSERConfig(use_chat_template=False) --------------------------------------------------------------------------
def test_chat_suffix_follows_use_chat_template_unless_set():
    assert LaSERConfig().chat_suffix == QWEN3_EMPTY_THINK
    assert LaSERConfig(use_chat_template=False).chat_suffix == ""
    assert LaSERConfig(use_chat_template=False, chat_suffix="<go>").chat_suffix == "<go>"
    assert LaSERConfig.from_preset("laser-qwen3", use_chat_template=False).chat_suffix == ""
    assert LaSERConfig(chat_suffix="<go>").replace(use_chat_template=False).chat_suffix == "<go>"
    assert LaSERConfig.from_dict(LaSERConfig(use_chat_template=False).to_dict()).chat_suffix == ""


def test_an_instruction_the_template_has_no_place_for_is_refused(encoder_dir):
    # The released document template is the bare text: HuggingFaceEmbedding's text_instruction would be lost.
    match = r"text_instruction='passage: ' would change nothing.*document template '\{text\}'"
    with pytest.raises(ValueError, match=match):
        LaSEREmbedding(str(encoder_dir), device="cpu", text_instruction="passage: ")
    embedder = LaSERDocumentEmbedder(model=str(encoder_dir), device=CPU, instruction="passage: ")
    with pytest.raises(ValueError, match="instruction='passage: ' would change nothing.*prefix / suffix"):
        embedder.run([Document(content="x")])


def test_without_the_chat_template_no_think_block_is_appended(encoder):
    from laser_integrations.formatting import Formatter

    plain = Formatter(encoder.tokenizer, LaSERConfig(use_chat_template=False, query_template="{text}"))
    assert plain.render("a question", "query") == "a question"
    chat = Formatter(encoder.tokenizer, LaSERConfig(query_template="{text}"))
    assert chat.render("a question", "query").endswith("a question<|im_end|>\n<|im_start|>assistant\n" + QWEN3_EMPTY_THINK)


def test_cache_folder_is_the_hub_cache_and_local_files_only_stays_offline(encoder, encoder_dir, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.file_download as hub_download

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--acme--tiny-laser"  # the Hugging Face cache layout of the hub id acme/tiny-laser
    shutil.copytree(encoder_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    requests: list[str] = []

    def no_network(url, *args, **kwargs):
        requests.append(url)
        raise hub_download.OfflineModeIsEnabled(url)

    monkeypatch.setattr(hub_download, "get_hf_file_metadata", no_network)
    model = LaSEREmbedding("acme/tiny-laser", cache_folder=str(tmp_path), local_files_only=True, device="cpu")
    np.testing.assert_allclose(model.get_text_embedding(TEXTS[0]), encoder.encode_documents(TEXTS[:1])[0], atol=1e-5)
    assert requests == []
    with pytest.raises(FileNotFoundError, match="No LaSER checkpoint at 'acme/tiny-laser'"):
        LaSEREmbedding("acme/tiny-laser", local_files_only=True, device="cpu")  # not in the default cache
