"""Token-budget batching, the out-of-memory back-off, and the multi-process encoding pool."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from laser_integrations.testing import tiny_encoder

WORDS = "the prime numbers are divisible only by one and themselves entropy measures a random variable".split()


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    """Short and long texts in shuffled order (1 to 40 words)."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 2, 4, 12, 40]))) for _ in range(n)]
    rng.shuffle(texts)
    return texts


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return mixed_texts(24)


@pytest.fixture(scope="module")
def one_by_one(encoder, texts) -> np.ndarray:
    """The independent reference: every text embedded alone (no padding, no batch companions)."""
    return np.stack([encoder.encode_documents([t])[0] for t in texts])


def record_batches(monkeypatch, encoder) -> list[tuple[int, int]]:
    """(rows, width) of every forward pass the encoder makes."""
    seen: list[tuple[int, int]] = []
    real = encoder.embed_token_ids

    def recording(batch, k, pool=None, **kwargs):
        seen.append((len(batch), max(len(ids) for ids in batch)))
        return real(batch, k, pool, **kwargs)

    monkeypatch.setattr(encoder, "embed_token_ids", recording)
    return seen


def test_token_budget_batching_equals_plain_batching(encoder, texts, one_by_one, monkeypatch):
    plain = encoder.encode_documents(texts, batch_size=8)
    batches = record_batches(monkeypatch, encoder)
    k = encoder.config.num_thinking_steps
    budget = 400
    budgeted = encoder.encode_documents(texts, batch_size=8, max_tokens_per_batch=budget)
    np.testing.assert_allclose(plain, one_by_one, atol=1e-6)
    np.testing.assert_allclose(budgeted, one_by_one, atol=1e-6)
    assert sum(rows for rows, _ in batches) == len(texts)
    # Every batch fits the budget (input positions plus the K - 1 latent steps), or is one text alone.
    for rows, width in batches:
        assert rows == 1 or rows * (width + k - 1) <= budget
    # Long texts come fewer to a batch than short ones: memory, not count, bounds a batch.
    widest = max(batches, key=lambda b: b[1])
    assert widest[0] < max(rows for rows, _ in batches) and widest[0] < 8


def test_invalid_token_budget_is_refused(encoder):
    with pytest.raises(ValueError, match="max_tokens_per_batch must be a positive integer or None, got 0"):
        encoder.encode_documents(["x"], max_tokens_per_batch=0)


def test_out_of_memory_halves_the_batch_once_per_size_and_says_so(encoder, texts, one_by_one, monkeypatch, caplog):
    real = encoder.embed_token_ids
    attempts: list[int] = []

    def fails_above_two(batch, k, pool=None, **kwargs):
        attempts.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch, k, pool, **kwargs)

    monkeypatch.setattr(encoder, "embed_token_ids", fails_above_two)
    with caplog.at_level(logging.WARNING, logger="laser_integrations.encoder"):
        out = encoder.encode_documents(texts, batch_size=8)
    np.testing.assert_allclose(out, one_by_one, atol=1e-6)
    assert [n for n in attempts if n > 2] == [8, 4]  # each too-large size tried once, then never again
    messages = [r.getMessage() for r in caplog.records]
    assert any("Out of memory on cpu with a batch of 8 texts" in m and "batches of at most 4 texts" in m for m in messages)
    assert any("with a batch of 4 texts" in m and "batches of at most 2 texts" in m for m in messages)


def test_out_of_memory_on_one_text_is_an_error_that_names_the_fix(encoder, monkeypatch):
    def always_fails(batch, k, pool=None, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(encoder, "embed_token_ids", always_fails)
    with pytest.raises(torch.OutOfMemoryError, match="embedding a single text of .* lower document_max_length"):
        encoder.encode_documents(["one text", "two texts"], batch_size=2)


def test_two_cpu_processes_give_the_embeddings_of_one_in_input_order(encoder, texts, one_by_one):
    from laser_integrations.parallel import EncoderPool, shared_pool

    with shared_pool(encoder, "cpu:0,cpu:1", threads_per_process=1) as pool:
        assert pool.devices == ["cpu:0", "cpu:1"]
        assert shared_pool(encoder, ["cpu:0", "cpu:1"], threads_per_process=1) is pool  # components share it
        pooled = encoder.encode_documents(texts, batch_size=4, pool=pool)
        each_k = encoder.encode_each_k(texts[:5], [1, 2], kind="query", pool=pool)
        with pytest.raises(ValueError, match="started from another encoder"):
            tiny_encoder("qwen3", seed=3).encode_documents(texts, pool=pool)
    np.testing.assert_allclose(pooled, one_by_one, atol=1e-6)
    for k in (1, 2):
        np.testing.assert_allclose(each_k[k], encoder.encode_queries(texts[:5], num_thinking_steps=k), atol=1e-6)
    with pytest.raises(RuntimeError, match="This EncoderPool is closed"):
        EncoderPool.encode_raw(pool, texts, "document", None, 4, False, [1], True, None, None)


@pytest.mark.parametrize(
    ("devices", "match"),
    [
        ("cuda", "Give CUDA devices with their index"),
        ("cuda:0", "is not available: this machine has 0 CUDA device"),
        ("tpu:0", "Invalid device 'tpu:0'"),
        ("cpu:0,", "must name at least one device"),
    ],
)
def test_bad_devices_are_refused(devices, match):
    from laser_integrations.parallel import parse_devices

    if torch.cuda.is_available() and devices.startswith("cuda:"):
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ValueError, match=match):
        parse_devices(devices)


def test_cuda_paths_by_injection(monkeypatch, caplog):
    """Without a GPU: the CUDA device checks and the CUDA side of the back-off, with torch.cuda faked."""
    from laser_integrations.encoder import BatchLimits
    from laser_integrations.parallel import parse_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_devices(None) == ["cuda:0", "cuda:1"]
    assert parse_devices("cuda:1, cuda:0") == ["cuda:1", "cuda:0"]
    with pytest.raises(ValueError, match="Device 'cuda:2' is not available: this machine has 2 CUDA device"):
        parse_devices(["cuda:0", "cuda:2"])
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    limits = BatchLimits(64, 64 * 8194)
    with caplog.at_level(logging.WARNING, logger="laser_integrations.encoder"):
        limits.halve(list(range(64)), 8194, torch.device("cuda:0"))
    assert (limits.max_texts, limits.max_tokens, emptied) == (32, 32 * 8194, [True])
    assert "Out of memory on cuda:0 with a batch of 64 texts x 8194 positions" in caplog.text


def test_a_model_with_transformers_capturing_hooks_still_pickles_for_the_workers():
    """transformers installs local-function forward hooks on a model once it returns hidden states; spawn must
    still be able to send that model to a worker (the full suite met this after another test's forward)."""
    import pickle

    from transformers.utils.output_capturing import maybe_install_capturing_hooks

    from laser_integrations.parallel import picklable_model

    model = tiny_encoder(seed=3).model
    maybe_install_capturing_hooks(model)
    hooked = sum(len(m._forward_hooks) for m in model.modules())
    assert hooked > 0 and model._output_capturing_hooks_installed
    with pytest.raises(AttributeError, match="output_capturing_hook"):
        pickle.dumps(model)
    with picklable_model(model):
        copy = pickle.loads(pickle.dumps(model))
    assert not copy._output_capturing_hooks_installed  # the worker's copy installs its own on first use
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooked and model._output_capturing_hooks_installed
