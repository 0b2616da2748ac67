"""Tiny random causal LMs and tokenizers, so tests and examples run offline in milliseconds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from ..config import LaSERConfig
from ..encoder import LaSEREncoder

SHARED_ENV = "LASER_SHARED_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path | None:
    """The project's shared assets folder: ``$LASER_SHARED_DIR``, else ``../shared`` beside the repository."""
    path = Path(os.environ.get(SHARED_ENV, _REPO_ROOT.parent / "shared"))
    return path if path.is_dir() else None


_CORPUS = [
    "the prime numbers are divisible only by one and themselves",
    "a prefix code satisfies the kraft inequality on codeword lengths",
    "entropy measures the average information of a random variable",
    "the derivative of a product follows the product rule",
    "special relativity dilates time for a moving clock",
    "bayes theorem updates a prior with a likelihood",
    "the integral of a derivative recovers the function",
    "question answer theorem proof lemma corollary definition example",
]


def build_bpe_tokenizer(vocab_size: int = 300, chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer trained in well under a second, with a ChatML-style template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=specials[1:]
    )
    if chat_template:
        fast.chat_template = (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        )
    return fast


def tiny_causal_lm(
    vocab_size: int, arch: Literal["qwen3", "llama"] = "qwen3", seed: int = 0, **overrides: Any
) -> torch.nn.Module:
    """A 2-layer random causal LM of the given architecture (hidden 64), in fp32 on the CPU."""
    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False,
    )  # fmt: skip
    common.update(overrides)
    if arch == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, **common))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        msg = f"Invalid arch {arch!r}. Valid archs are: ['qwen3', 'llama']."
        raise ValueError(msg)
    return model.eval()


def tiny_encoder(
    arch: Literal["qwen3", "llama"] = "qwen3",
    *,
    tokenizer: PreTrainedTokenizerFast | None = None,
    config: LaSERConfig | None = None,
    seed: int = 0,
) -> LaSEREncoder:
    """A LaSER encoder over a tiny random model; the trained-in-place BPE tokenizer unless one is given."""
    tokenizer = tokenizer or build_bpe_tokenizer()
    model = tiny_causal_lm(len(tokenizer), arch=arch, seed=seed)
    return LaSEREncoder(model, tokenizer, config or LaSERConfig())
