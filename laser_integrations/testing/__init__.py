"""Tiny offline models for tests, notebooks and benchmarks: built from configs, no download."""

from .tiny import SHARED_ENV, build_bpe_tokenizer, shared_dir, tiny_causal_lm, tiny_encoder

__all__ = ["SHARED_ENV", "build_bpe_tokenizer", "shared_dir", "tiny_causal_lm", "tiny_encoder"]
