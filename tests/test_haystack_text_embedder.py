"""LaSERTextEmbedder: values against the encoder, laziness, the shared model, errors, serialization, async."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from haystack import Pipeline
from haystack.utils import ComponentDevice, Secret

from laser_integrations import LaSEREncoder, backend
from laser_integrations.haystack import LaSERDocumentEmbedder, LaSERTextEmbedder


def make(model, **kwargs) -> LaSERTextEmbedder:
    return LaSERTextEmbedder(model=str(model), device=ComponentDevice.from_str("cpu"), progress_bar=False, **kwargs)


def test_init_is_lazy(monkeypatch):
    calls = []
    monkeypatch.setattr(backend, "get_encoder", lambda *a, **k: calls.append(a))
    embedder = LaSERTextEmbedder(model="no/such-model")
    assert embedder.encoder is None
    assert calls == []


def test_warmup_doesnt_reload(monkeypatch, encoder_dir):
    backend.clear_encoder_cache()
    loads = []
    real = LaSEREncoder.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(LaSEREncoder, "from_pretrained", classmethod(counting))
    text = make(encoder_dir)
    text.warm_up()
    first = text.encoder
    text.warm_up()
    # A document embedder with the same load parameters (other encode settings) shares the loaded model.
    docs = LaSERDocumentEmbedder(model=str(encoder_dir), device=ComponentDevice.from_str("cpu"), num_thinking_steps=2)
    docs.warm_up()
    assert text.encoder is first is docs.encoder
    assert loads == [str(encoder_dir)]


def test_run_embeds_as_query_with_instruction_prefix_and_k(encoder, encoder_dir):
    embedder = make(encoder_dir, instruction="Retrieve theorems", prefix="Q: ", suffix=" ?", num_thinking_steps=2)
    result = embedder.run("prefix codes and lengths")
    expected = encoder.encode_queries(["Q: prefix codes and lengths ?"], instruction="Retrieve theorems", num_thinking_steps=2)
    assert isinstance(result["embedding"], list) and isinstance(result["embedding"][0], float)
    np.testing.assert_allclose(result["embedding"], expected[0], atol=1e-5)
    # and not as a document: the two templates differ for this checkpoint
    as_document = encoder.encode_documents(["Q: prefix codes and lengths ?"], num_thinking_steps=2)[0]
    assert not np.allclose(result["embedding"], as_document, atol=1e-3)


def test_default_instruction_and_k_are_the_checkpoints(encoder, encoder_dir):
    result = make(encoder_dir).run("entropy of a coin")
    np.testing.assert_allclose(result["embedding"], encoder.encode_queries(["entropy of a coin"])[0], atol=1e-5)


def test_normalize_embeddings_false_gives_raw_vectors(encoder_dir):
    raw = np.asarray(make(encoder_dir, normalize_embeddings=False).run("entropy of a coin")["embedding"])
    unit = np.asarray(make(encoder_dir).run("entropy of a coin")["embedding"])
    assert not np.isclose(np.linalg.norm(raw), 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / np.linalg.norm(raw), unit, atol=1e-5)


@pytest.mark.parametrize("bad", [["a list"], None, 3])
def test_wrong_type_points_at_document_embedder(encoder_dir, bad):
    with pytest.raises(TypeError, match="expects a string.*use LaSERDocumentEmbedder"):
        make(encoder_dir).run(bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"num_thinking_steps": 0}, ValueError, "num_thinking_steps must be an integer >= 1"),
        ({"instruction": 3}, TypeError, "instruction must be a string or None"),
    ],
)
def test_bad_init_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LaSERTextEmbedder(model="m", **kwargs)


def test_to_dict_from_dict_round_trip(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    embedder = LaSERTextEmbedder(
        model="some/model",
        device=ComponentDevice.from_str("cpu"),
        prefix="p",
        batch_size=4,
        num_thinking_steps=5,
        instruction="Find proofs",
        model_kwargs={"dtype": torch.bfloat16},
        tokenizer_kwargs={"padding_side": "left"},
        trust_remote_code=True,
        revision="v1",
    )
    data = embedder.to_dict()
    assert data["type"] == "haystack_integrations.components.embedders.laser.text_embedder.LaSERTextEmbedder"
    params = data["init_parameters"]
    assert params["model_kwargs"] == {"dtype": "torch.bfloat16"}
    assert params["token"] == {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False}
    assert "hf_secret_value" not in str(data)
    assert embedder.model_kwargs == {"dtype": torch.bfloat16}  # serializing does not change the component
    again = LaSERTextEmbedder.from_dict(data)
    assert again.to_dict() == data
    assert again.model_kwargs == {"dtype": torch.bfloat16}
    assert again.device == ComponentDevice.from_str("cpu")
    assert (again.num_thinking_steps, again.instruction, again.trust_remote_code) == (5, "Find proofs", True)


def test_token_secret_that_is_not_an_env_var_is_not_serialized():
    embedder = LaSERTextEmbedder(model="m", token=Secret.from_token("hf_plain"))
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):
        embedder.to_dict()


def test_pipeline_dumps_and_loads_without_allowlist(monkeypatch):
    monkeypatch.delenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", raising=False)
    pipeline = Pipeline()
    pipeline.add_component("query", LaSERTextEmbedder(model="m", num_thinking_steps=2, instruction="x"))
    loaded = Pipeline.loads(pipeline.dumps())
    component = loaded.get_component("query")
    assert isinstance(component, LaSERTextEmbedder)
    assert (component.num_thinking_steps, component.instruction) == (2, "x")


async def test_run_async_many_concurrent_calls(encoder, encoder_dir):
    embedder = make(encoder_dir, num_thinking_steps=2)
    texts = [f"question number {i} about entropy" for i in range(24)]
    results = await asyncio.gather(*(embedder.run_async(t) for t in texts))
    expected = encoder.encode_queries(texts, num_thinking_steps=2)
    np.testing.assert_allclose([r["embedding"] for r in results], expected, atol=1e-5)
