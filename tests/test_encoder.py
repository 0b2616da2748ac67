"""LaSEREncoder: exactness against the paper's equations, batching, formats, loading, and bad input."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from laser_integrations import PRESETS, LaSERConfig, LaSEREncoder
from laser_integrations.testing import build_bpe_tokenizer, tiny_causal_lm, tiny_encoder

TEXTS = [
    "prime",
    "the prime numbers are divisible only by one and themselves, and every integer factors into primes",
    "entropy measures the average information of a random variable " * 6,
    "kraft inequality",
]


def reference_embedding(model, token_ids: list[int], k: int) -> np.ndarray:
    """The latent view written straight from the equations: one text, no cache, full recompute per step.

    h_1 = final-layer state at the last input token; for j = 2..K: p_j = softmax(W_lm h_{j-1}) from the model's
    own logits, t_j = p_j^T E with E the embedding of every token as the model computes it, appended as the next
    input embedding; v = normalize(mean(h_1..h_K)).
    """
    with torch.no_grad():
        embed = model.get_input_embeddings()
        table = embed(torch.arange(model.config.vocab_size))  # (V, H), scaled as the model scales tokens
        inputs = embed(torch.tensor([token_ids]))
        states = []
        for step in range(k):
            out = model(inputs_embeds=inputs, output_hidden_states=True)
            states.append(out.hidden_states[-1][0, -1])
            if step < k - 1:
                p = torch.softmax(out.logits[0, -1].float(), dim=-1)
                inputs = torch.cat([inputs, (p @ table)[None, None]], dim=1)
        return F.normalize(torch.stack(states).mean(0), dim=-1).numpy()


def token_ids(encoder: LaSEREncoder, text: str, kind: str = "query") -> list[int]:
    return encoder.formatter.tokenize([text], kind)[0][0]


@pytest.mark.parametrize("arch", ["qwen3", "llama"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_matches_direct_equations(arch: str, k: int) -> None:
    encoder = tiny_encoder(arch)
    got = encoder.encode_queries(TEXTS, num_thinking_steps=k, batch_size=4)
    for i, text in enumerate(TEXTS):
        want = reference_embedding(encoder.model, token_ids(encoder, text), k)
        np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_k1_is_last_token_pooling(encoder: LaSEREncoder) -> None:
    ids = token_ids(encoder, TEXTS[1], "document")
    with torch.no_grad():
        last = encoder.model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0, -1]
    want = F.normalize(last, dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_documents([TEXTS[1]], num_thinking_steps=1)[0], want, atol=1e-6)


def test_gemma_soft_tokens_are_scaled_like_real_tokens() -> None:
    """Gemma multiplies token embeddings by sqrt(hidden); the soft token must be scaled the same way."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = build_bpe_tokenizer()
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(
        Gemma3TextConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, final_logit_softcapping=30.0,
        )  # fmt: skip
    ).eval()
    encoder = LaSEREncoder(model, tokenizer, LaSERConfig())
    got = encoder.encode_queries(TEXTS[:2], num_thinking_steps=3)
    for i, text in enumerate(TEXTS[:2]):
        np.testing.assert_allclose(got[i], reference_embedding(model, token_ids(encoder, text), 3), atol=1e-5)
    # Without the scale the result would differ: the check above is not vacuous.
    assert float(model.get_input_embeddings().embed_scale) == pytest.approx(8.0)


def test_batch_invariance(encoder: LaSEREncoder) -> None:
    """A text's embedding does not depend on its batch mates (left padding with correct positions)."""
    together = encoder.encode_documents(TEXTS, batch_size=len(TEXTS))
    alone = np.stack([encoder.encode_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    in_pairs = encoder.encode_documents(TEXTS, batch_size=2)
    np.testing.assert_allclose(in_pairs, alone, atol=1e-5)


def test_encode_each_k_equals_one_run_per_k(encoder: LaSEREncoder) -> None:
    """The scaling curve in one pass: the first k step states of a 5-step run are a k-step run's."""
    each = encoder.encode_each_k(TEXTS, [5, 1, 3], kind="query", instruction="Find the theorem.", batch_size=2)
    assert list(each) == [5, 1, 3]
    for k, got in each.items():
        assert got.dtype == np.float32 and got.shape == (len(TEXTS), encoder.dimension)
        expected = encoder.encode_queries(TEXTS, num_thinking_steps=k, instruction="Find the theorem.", batch_size=2)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(each[1], each[5], atol=1e-3)
    with pytest.raises(ValueError, match=r"num_thinking_steps must be an integer >= 1 .*got 0"):
        encoder.encode_each_k(TEXTS, [2, 0], kind="document")
    with pytest.raises(ValueError, match="at least one K"):
        encoder.encode_each_k(TEXTS, [], kind="document")


def test_output_type_shape_and_norm(encoder: LaSEREncoder) -> None:
    out = encoder.encode_queries(TEXTS)
    assert out.dtype == np.float32 and out.shape == (len(TEXTS), encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    raw = encoder.encode_queries(TEXTS[:1]) if encoder.config.normalize else out
    assert raw.shape == (1, 64)


def test_normalize_false_keeps_the_mean_of_step_states() -> None:
    encoder = tiny_encoder(config=LaSERConfig(normalize=False))
    out = encoder.encode_queries(TEXTS[:2])
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_instruction_changes_query_but_not_document(encoder: LaSEREncoder) -> None:
    a = encoder.encode_queries(TEXTS[:1], instruction="Find the theorem")
    b = encoder.encode_queries(TEXTS[:1], instruction="Find a recipe")
    assert np.abs(a - b).max() > 1e-4
    assert encoder.formatter.render("x", "query", "Find the theorem").count("Instruct: Find the theorem\nQuery: x") == 1
    assert "Instruct" not in encoder.formatter.render("x", "document")


def test_released_checkpoint_token_sequence(qwen3_tokenizer) -> None:
    """Chat template as one user message + generation prompt + Qwen3's empty think block, no EOS."""
    encoder = LaSEREncoder(tiny_causal_lm(len(qwen3_tokenizer)), qwen3_tokenizer, PRESETS["laser-qwen3"])
    ids = encoder.formatter.tokenize(["What is 2+2?"], "query", "Retrieve math theorems")[0][0]
    expected = (
        "<|im_start|>user\nInstruct: Retrieve math theorems\nQuery: What is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert qwen3_tokenizer.decode(ids) == expected
    assert ids == qwen3_tokenizer(expected, add_special_tokens=False)["input_ids"]
    think = qwen3_tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    assert think[0] in ids and think[1] in ids and ids[-1] != qwen3_tokenizer.eos_token_id
    doc = encoder.formatter.tokenize(["Pythagoras"], "document")[0][0]
    assert qwen3_tokenizer.decode(doc) == (
        "<|im_start|>user\nPythagoras<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_truncation_keeps_template_and_warns_once(qwen3_tokenizer, caplog) -> None:
    config = LaSERConfig(query_max_length=40)
    encoder = LaSEREncoder(tiny_causal_lm(len(qwen3_tokenizer)), qwen3_tokenizer, config)
    long = "word " * 200
    ids, truncated = encoder.formatter.tokenize([long, "short", long], "query")
    assert truncated == 2 and len(ids[0]) == 40 and len(ids[1]) < 40
    assert qwen3_tokenizer.decode(ids[0]).endswith("word<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    with caplog.at_level(logging.WARNING, logger="laser_integrations.encoder"):
        encoder.encode_queries([long, "short", long])
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 of 3 queries were longer than query_max_length=40" in warnings[0].getMessage()


def test_template_longer_than_budget_is_an_error(encoder: LaSEREncoder) -> None:
    tight = LaSEREncoder(encoder.model, encoder.tokenizer, LaSERConfig(query_max_length=5))
    with pytest.raises(ValueError, match="query_max_length=5"):
        tight.encode_queries(["a long enough query to be truncated " * 3])


def test_empty_input_returns_empty_array_without_running_the_model(encoder: LaSEREncoder, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("the model must not run")

    monkeypatch.setattr(encoder, "embed_token_ids", boom)
    out = encoder.encode_documents([])
    assert out.shape == (0, encoder.dimension) and out.dtype == np.float32


def test_bad_input_types(encoder: LaSEREncoder) -> None:
    with pytest.raises(TypeError, match="single str"):
        encoder.encode_queries("a bare string")
    with pytest.raises(TypeError, match=r"texts\[2\] must be a string, got int"):
        encoder.encode_documents(["a", "b", 3])
    with pytest.raises(TypeError, match=r"texts\[0\] must be a string, got NoneType"):
        encoder.encode_documents([None])
    with pytest.raises(ValueError, match="num_thinking_steps must be an integer >= 1"):
        encoder.encode_queries(["a"], num_thinking_steps=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        encoder.encode_queries(["a"], batch_size=0)
    with pytest.raises(ValueError, match="Valid kinds are"):
        encoder.encode(["a"], kind="passage")


def test_config_validation_and_round_trip(tmp_path) -> None:
    with pytest.raises(ValueError, match="num_thinking_steps must be an integer >= 1"):
        LaSERConfig(num_thinking_steps=0)
    with pytest.raises(ValueError, match=r"must contain the placeholder '\{text\}'"):
        LaSERConfig(query_template="Query: {query}")
    with pytest.raises(ValueError, match="placeholder other than"):
        LaSERConfig(document_template="{text} {title}")
    with pytest.raises(ValueError, match="Valid presets are"):
        LaSERConfig.from_preset("nope")
    with pytest.raises(ValueError, match="Valid keys are"):
        LaSERConfig.from_dict({"num_steps": 3})
    config = LaSERConfig(num_thinking_steps=5, query_instruction="Find it", query_max_length=77)
    config.save(tmp_path)
    assert LaSERConfig.load(tmp_path) == config


def test_missing_chat_template_names_the_fix() -> None:
    encoder = tiny_encoder(tokenizer=build_bpe_tokenizer(chat_template=False))
    with pytest.raises(ValueError, match="use_chat_template=False"):
        encoder.encode_queries(["x"])
    plain = tiny_encoder(tokenizer=build_bpe_tokenizer(chat_template=False), config=PRESETS["plain"])
    assert plain.encode_queries(["x"]).shape == (1, 64)


def test_save_load_round_trip(encoder: LaSEREncoder, encoder_dir) -> None:
    loaded = LaSEREncoder.from_pretrained(encoder_dir, device="cpu")
    assert loaded.config == encoder.config
    assert (encoder_dir / "laser_config.json").is_file() and (encoder_dir / "model.safetensors").is_file()
    np.testing.assert_allclose(loaded.encode_queries(TEXTS), encoder.encode_queries(TEXTS), atol=1e-6)
    overridden = LaSEREncoder.from_pretrained(encoder_dir, num_thinking_steps=5)
    assert overridden.config.num_thinking_steps == 5


def test_save_replaces_an_existing_folder_completely(encoder: LaSEREncoder, tmp_path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    encoder.save_pretrained(target)
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind


def test_checkpoint_without_laser_config_uses_released_preset(encoder: LaSEREncoder, tmp_path) -> None:
    encoder.model.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    loaded = LaSEREncoder.from_pretrained(tmp_path)
    assert loaded.config == PRESETS["laser-qwen3"]


def test_lora_adapter_folder_equals_merged_model(tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    base = tiny_encoder("llama", seed=3)
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir)
    peft_model = get_peft_model(
        tiny_causal_lm(len(base.tokenizer), arch="llama", seed=3),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False),
    )
    peft_model.peft_config["default"].base_model_name_or_path = str(base_dir)
    adapter = LaSEREncoder(peft_model, base.tokenizer, base.config)
    expected = adapter.encode_documents(TEXTS)  # LoRA applied on the fly, unmerged
    assert np.abs(expected - base.encode_documents(TEXTS)).max() > 1e-3  # the adapter changes something
    adapter_dir = tmp_path / "adapter"
    adapter.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").is_file()
    loaded = LaSEREncoder.from_pretrained(adapter_dir)
    assert not hasattr(loaded.model, "peft_config")  # merged into plain weights
    np.testing.assert_allclose(loaded.encode_documents(TEXTS), expected, atol=1e-5)


def test_loading_errors_name_the_problem(encoder: LaSEREncoder, tmp_path) -> None:
    missing = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        LaSEREncoder.from_pretrained(missing)
    with pytest.raises(FileNotFoundError, match="no-such-org/no-such-model"):
        LaSEREncoder.from_pretrained("no-such-org/no-such-model", local_files_only=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        LaSEREncoder.from_pretrained(empty)
    no_weights = tmp_path / "no-weights"
    encoder.model.config.save_pretrained(no_weights)
    with pytest.raises(FileNotFoundError, match="no weights"):
        LaSEREncoder.from_pretrained(no_weights)
    with pytest.raises(ValueError, match="Valid dtypes are"):
        LaSEREncoder.from_pretrained(no_weights, dtype="int3")


def test_pickle_weights_need_opt_in(encoder: LaSEREncoder, tmp_path) -> None:
    encoder.model.config.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    torch.save(encoder.model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="allow_pickle=True"):
        LaSEREncoder.from_pretrained(tmp_path)


def test_remote_code_is_off_unless_asked(encoder_dir, monkeypatch) -> None:
    from laser_integrations import loading

    seen = []
    real = loading.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", spy)
    LaSEREncoder.from_pretrained(encoder_dir)
    LaSEREncoder.from_pretrained(encoder_dir, trust_remote_code=True)
    assert [kw["trust_remote_code"] for kw in seen] == [False, True]
    assert seen[0]["use_safetensors"] is True


def test_concurrent_calls_from_threads(encoder: LaSEREncoder) -> None:
    texts = [f"{t} {i}" for i in range(6) for t in TEXTS]
    want = np.stack([encoder.encode_queries([t])[0] for t in texts])
    barrier = threading.Barrier(6)

    def one(i: int) -> np.ndarray:
        barrier.wait()
        return encoder.encode_queries(texts[i::6], batch_size=2)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    for i, got in enumerate(results):
        np.testing.assert_allclose(got, want[i::6], atol=1e-5)


def test_recompute_path_equals_kv_cache_path(encoder: LaSEREncoder) -> None:
    """Training with gradient checkpointing recomputes instead of caching; both give the same states."""
    from laser_integrations.latent import latent_think

    ids, mask = encoder.pad(encoder.formatter.tokenize(TEXTS, "query")[0], torch.device("cpu"))
    with torch.no_grad():
        cached = latent_think(encoder.model, ids, mask, 4, use_cache=True)
        recomputed = latent_think(encoder.model, ids, mask, 4, use_cache=False)
    torch.testing.assert_close(cached.step_states, recomputed.step_states, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached.embeddings, recomputed.embeddings, atol=1e-5, rtol=1e-5)


def test_inference_cache_equals_training_cache_and_keeps_gradients(encoder: LaSEREncoder) -> None:
    """Inference writes into a preallocated cache; with gradients on, the growing cache keeps autograd intact."""
    from laser_integrations.latent import _PreallocatedLayer, _thinking_cache, latent_think

    ids, mask = encoder.pad(encoder.formatter.tokenize(TEXTS, "query")[0], torch.device("cpu"))
    with torch.inference_mode():
        assert all(isinstance(layer, _PreallocatedLayer) for layer in _thinking_cache(encoder.model, 2).layers)
        inference = latent_think(encoder.model, ids, mask, 4)
    assert not any(isinstance(layer, _PreallocatedLayer) for layer in _thinking_cache(encoder.model, 2).layers)
    training = latent_think(encoder.model, ids, mask, 4)
    training.embeddings.sum().backward()
    grads = [p.grad for p in encoder.model.parameters() if p.grad is not None]
    encoder.model.zero_grad(set_to_none=True)
    torch.testing.assert_close(training.step_states.detach(), inference.step_states, atol=1e-5, rtol=1e-5)
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_soft_token_with_subnormal_probabilities_equals_float64(encoder: LaSEREncoder) -> None:
    """A peaked next-token distribution (many probabilities below the smallest normal float) on CPU."""
    from laser_integrations.latent import soft_token_embeddings

    lm = encoder.model
    hidden = torch.randn(3, lm.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 300
    with torch.no_grad():
        probs64 = torch.softmax(lm.get_output_embeddings()(hidden).double(), dim=-1)
        assert bool(((probs64 > 0) & (probs64 < torch.finfo(torch.float32).tiny)).any())  # the case under test
        want = probs64 @ lm.get_input_embeddings().weight.double()
        got = soft_token_embeddings(lm, hidden)[:, 0]
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-6)


def test_kv_workspace_is_reused_across_batches_without_changing_embeddings(encoder: LaSEREncoder) -> None:
    """CPU encoding writes each batch's KV cache into memory kept from the last; values stay the same."""
    from laser_integrations.latent import KVWorkspace, latent_think

    texts = [*TEXTS, "a much longer text " * 12]
    ids, mask = encoder.pad(encoder.formatter.tokenize(texts, "query")[0], torch.device("cpu"))
    workspace = KVWorkspace()
    with torch.inference_mode():
        fresh = latent_think(encoder.model, ids, mask, 3)
        first = latent_think(encoder.model, ids, mask, 3, workspace=workspace)
        held = workspace.nbytes
        small = latent_think(encoder.model, ids[:2, -4:], mask[:2, -4:], 3, workspace=workspace)  # fits: reused
        again = latent_think(encoder.model, ids, mask, 3, workspace=workspace)
        small_fresh = latent_think(encoder.model, ids[:2, -4:], mask[:2, -4:], 3)
    assert held > 0 and workspace.nbytes == held
    for got, want in ((first, fresh), (again, fresh), (small, small_fresh)):
        torch.testing.assert_close(got.step_states, want.step_states, atol=1e-6, rtol=1e-6)

    encoder.encode_queries(TEXTS, num_thinking_steps=3)
    assert encoder.clear_kv_workspace() > 0
    assert encoder.clear_kv_workspace() == 0


def test_busy_kv_workspace_is_not_shared() -> None:
    """A run that finds the workspace in use by another thread allocates its own cache."""
    from laser_integrations.latent import KVWorkspace

    workspace = KVWorkspace()
    with workspace.borrowed() as held:
        assert held is workspace
        with workspace.borrowed() as concurrent:
            assert concurrent is None
    with workspace.borrowed() as again:
        assert again is workspace


def test_preallocated_cache_grows_past_its_size() -> None:
    """A caller that runs more steps than the cache was sized for still gets every position."""
    from laser_integrations.latent import _PreallocatedLayer

    layer = _PreallocatedLayer(extra=1)
    keys = torch.arange(24.0).reshape(1, 2, 3, 4)
    layer.update(keys, -keys)
    for step in range(3):  # the first fits, the next two grow the cache
        new = torch.full((1, 2, 1, 4), float(100 + step))
        got_keys, got_values = layer.update(new, -new)
    want = torch.cat([keys] + [torch.full((1, 2, 1, 4), float(100 + s)) for s in range(3)], dim=2)
    torch.testing.assert_close(got_keys, want)
    torch.testing.assert_close(got_values, -want)
    assert layer.get_seq_length() == 6


def test_right_padding_is_refused(encoder: LaSEREncoder) -> None:
    from laser_integrations.latent import latent_think

    ids = torch.tensor([[5, 6, 7], [5, 6, 0]])
    with pytest.raises(ValueError, match="left padding"):
        latent_think(encoder.model, ids, torch.tensor([[1, 1, 1], [1, 1, 0]]), 3)


def test_chunked_tokenisation_gives_the_same_embeddings_in_input_order(encoder: LaSEREncoder) -> None:
    whole = encoder.encode_documents(TEXTS, batch_size=3)
    chunked = LaSEREncoder(encoder.model, encoder.tokenizer, encoder.config)
    chunked.chunk_size = 2
    np.testing.assert_allclose(chunked.encode_documents(TEXTS, batch_size=3), whole, atol=1e-5)


def test_released_preset_reads_as_the_official_evaluation_harness():
    from laser_integrations.loading import released_dtype

    preset = PRESETS["laser-qwen3"]
    # src/scripts/run_eval.sh: max_length 8192, --precision fp16; laser_model.py get_instruction's fallback.
    assert preset.query_max_length == preset.document_max_length == 8192
    assert preset.query_instruction == "Retrieval relevant passage for the given query."
    assert released_dtype(torch.device("cuda")) == torch.float16
    assert released_dtype(torch.device("cpu")) == torch.float32
    # Training keeps the official training script's 512 unless a recipe sets otherwise.
    assert LaSERConfig().query_max_length == LaSERConfig().document_max_length == 512
