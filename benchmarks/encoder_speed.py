"""LaSER encoder latency on CPU (or CUDA) at Qwen3-0.6B's shape with random weights.

Prints, measured side by side in one process (runs interleaved, medians reported):
- K=1 (a standard single-pass dense retriever: last-token pooling), K=3 (LaSER), and the straightforward
  K=3 loop of public quick-start code (full-vocabulary logits at every prefix position, every layer's hidden
  states kept), as ratios;
- peak resident memory added by each call, and the KV workspace K=3 keeps between calls on CPU; K=3 is also
  timed with that workspace dropped before each call (fresh cache memory), which shows what reusing it buys;
- for the single query: the weight-streaming floor (bytes of weights one latent step must read over measured
  memory bandwidth), which bounds what each extra step costs;
- fp32 vs bf16 and the cosine distance between their embeddings.

    python benchmarks/encoder_speed.py                 # full Qwen3-0.6B shape (~3 GB fp32), several minutes
    python benchmarks/encoder_speed.py --num-layers 4  # a quick smoke run
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

from laser_integrations import LaSERConfig, LaSEREncoder
from laser_integrations.testing import build_bpe_tokenizer, shared_dir


def qwen3_06b_config(num_layers: int) -> Qwen3Config:
    # Qwen/Qwen3-0.6B's config.json values.
    return Qwen3Config(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=num_layers,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
        rope_theta=1000000, rms_norm_eps=1e-6, tie_word_embeddings=True,
    )  # fmt: skip


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms in a background thread."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    @property
    def added_mb(self) -> float:
        return (self.peak - self.base) / 2**20


@torch.inference_mode()
def straightforward_loop(encoder: LaSEREncoder, batches: list[list[list[int]]], k: int) -> None:
    """The loop as public quick-start code writes it: full causal-LM forward with output_hidden_states."""
    model = encoder.model
    embed = model.get_input_embeddings().weight
    for batch in batches:
        input_ids, mask = encoder.pad(batch, encoder.device)
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=True)
        states = [out.hidden_states[-1][:, -1]]
        past = out.past_key_values
        for _ in range(k - 1):
            soft = (torch.softmax(out.logits[:, -1].float(), -1).to(embed.dtype) @ embed)[:, None]
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
            out = model(inputs_embeds=soft, attention_mask=mask, past_key_values=past, output_hidden_states=True,
                        use_cache=True)  # fmt: skip
            past = out.past_key_values
            states.append(out.hidden_states[-1][:, -1])
        torch.nn.functional.normalize(torch.stack(states, 1).mean(1), dim=-1).cpu()


def make_texts(tokenizer, n: int, length: int, seed: int) -> list[str]:
    """n texts of about ``length`` tokens: decoded runs of ordinary (non-special) token ids."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        text = tokenizer.decode(rng.integers(1000, 30000, size=length).tolist())
        for _ in range(3):  # decoded ids re-tokenise a little differently: trim to the target length
            text = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:length])
        texts.append(text)
    return texts


def memory_bandwidth_gbs() -> float:
    """Read bandwidth: sum over a 1 GiB fp32 tensor (larger than every cache), best of 5."""
    x = torch.ones(2**28)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


def time_interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds and peak added memory of each function, runs interleaved so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    peaks: dict[str, float] = dict.fromkeys(fns, 0.0)
    for name, fn in fns.items():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            with PeakRSS() as mem:
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
            peaks[name] = max(peaks[name], mem.added_mb)
    return {n: statistics.median(v) for n, v in times.items()}, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-layers", type=int, default=28, help="28 = Qwen3-0.6B")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", default=["batch128", "batch512", "single"],
                        choices=["batch128", "batch512", "single"], help="which inputs to time")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--shared", type=Path, default=shared_dir(), help="folder holding tokenizers/qwen3")
    args = parser.parse_args()
    torch.manual_seed(0)

    qwen3 = args.shared / "tokenizers" / "qwen3" if args.shared else None
    tokenizer = AutoTokenizer.from_pretrained(qwen3) if qwen3 and qwen3.is_dir() else build_bpe_tokenizer(30500)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, "
          f"layers {args.num_layers}, tokenizer {type(tokenizer).__name__}")  # fmt: skip
    config = LaSERConfig(use_chat_template=False, chat_suffix="", query_template="{text}", document_max_length=1024)
    all_cases = {
        "batch128": ("32 x ~128 tokens", 32, 128),
        "batch512": ("8 x ~512 tokens", 8, 512),
        "single": ("1 x ~128 tokens (single query)", 1, 128),
    }
    cases = {
        label: (make_texts(tokenizer, n, length, seed), n)
        for seed, (key, (label, n, length)) in enumerate(all_cases.items())
        if key in args.cases
    }
    bandwidth = memory_bandwidth_gbs() if args.device == "cpu" else None
    if bandwidth:
        print(f"measured memory read bandwidth: {bandwidth:.1f} GB/s")

    model = Qwen3ForCausalLM(qwen3_06b_config(args.num_layers)).eval().to(args.device)
    reference: dict[str, np.ndarray] = {}
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        model = model.to(dtype)  # same weights in each dtype (fp32 runs first when listed first)
        encoder = LaSEREncoder(model, tokenizer, config)
        params = sum(p.numel() for p in model.parameters())
        print(f"\n== {dtype_name}: {params / 1e6:.0f}M parameters")
        for label, (texts, batch_size) in cases.items():
            batches = [
                encoder.formatter.tokenize(texts[i : i + batch_size], "document")[0]
                for i in range(0, len(texts), batch_size)
            ]
            fns = {
                "K=1": lambda: encoder.encode_documents(texts, batch_size=batch_size, num_thinking_steps=1),
                "K=3": lambda: encoder.encode_documents(texts, batch_size=batch_size, num_thinking_steps=3),
                # The KV workspace dropped before each call: what K=3 costs when its cache memory is new.
                "K=3 fresh cache memory": lambda: (
                    encoder.clear_kv_workspace(),
                    encoder.encode_documents(texts, batch_size=batch_size, num_thinking_steps=3),
                ),
                "straightforward K=3": lambda: straightforward_loop(encoder, batches, 3),
            }
            med, peak = time_interleaved(fns, args.repeats)
            print(f"{label}: K=1 {med['K=1']:.3f}s | K=3 {med['K=3']:.3f}s | straightforward K=3 "
                  f"{med['straightforward K=3']:.3f}s | K=3/K=1 {med['K=3'] / med['K=1']:.3f}x | "
                  f"K=3/straightforward {med['K=3'] / med['straightforward K=3']:.3f}x | peak +MB "
                  f"K=1 {peak['K=1']:.0f}, K=3 {peak['K=3']:.0f}, straightforward {peak['straightforward K=3']:.0f}")  # fmt: skip
            held = encoder.clear_kv_workspace()  # filled by the last K=3 call of the interleaved runs
            print(f"  K=3 with fresh cache memory each call {med['K=3 fresh cache memory']:.3f}s "
                  f"({med['K=3 fresh cache memory'] / med['K=1']:.3f}x K=1, peak +MB "
                  f"{peak['K=3 fresh cache memory']:.0f}); KV workspace kept between calls: {held / 2**20:.0f} MB")  # fmt: skip
            if batch_size == 1 and bandwidth:
                # One latent step reads every decoder weight, the LM head (V x H) and the embedding table
                # (V x H again for p @ E, even when tied: it is streamed twice).
                emb = model.get_input_embeddings().weight.numel()
                step_bytes = (params - emb + 2 * emb) * torch.finfo(dtype).bits // 8
                floor = step_bytes / (bandwidth * 1e9)
                step = (med["K=3"] - med["K=1"]) / 2
                print(f"  per latent step: measured {step * 1e3:.1f} ms; weight-streaming floor "
                      f"{step_bytes / 1e9:.2f} GB / {bandwidth:.1f} GB/s = {floor * 1e3:.1f} ms "
                      f"({step / floor:.2f}x the floor)")  # fmt: skip
        first_texts, first_batch = next(iter(cases.values()))
        emb = encoder.encode_documents(first_texts, batch_size=first_batch)
        if "emb" not in reference:
            reference["emb"] = emb
        else:
            cos = 1 - (emb * reference["emb"]).sum(1)
            print(f"cosine distance {dtype_name} vs {args.dtypes[0]} ({len(first_texts)} texts): max {cos.max():.2e}, mean {cos.mean():.2e}")


if __name__ == "__main__":
    main()
