"""``laser-train reason``: write chain-of-thought rationales for the queries that lack one.

Generators: a local transformers causal LM (batched greedy generation; any model ``load_model_and_tokenizer``
reads, ``smollm2-135m-offline`` included) or an OpenAI-compatible ``/chat/completions`` endpoint, through the
``openai`` client, whose URL and key come from the environment (``LASER_REASON_BASE_URL`` or ``OPENAI_BASE_URL``;
``LASER_REASON_API_KEY`` or ``OPENAI_API_KEY``; the key is never logged), with ``--concurrency`` requests in
flight and retries with exponential backoff on 408/409/429/5xx and connection errors.

Output: ``{"_id", "reasoning", "source"}`` lines (a BEIR ``reasoning.jsonl``), appended and flushed per batch;
a rerun skips every id already written, so a killed run resumes where it stopped. For a BEIR folder the
default output is its own ``reasoning.jsonl``, which the trainer reads; for a JSONL training file, ids are the
records' ``_id``/``id`` or their line numbers, and ``--merge_into`` writes a copy of the file with the rationales
filled in.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

logger = logging.getLogger(__name__)

# Ours. Paragraphs separated by blank lines become the segments that trajectory alignment uses.
REASON_PROMPT = (
    "Read the question below. Do not solve it. Instead, reason briefly about what it is really asking: "
    "which concepts, theorems, methods or facts are needed to answer it, and why. Write 2 to 4 short "
    "paragraphs separated by blank lines.\n\nQuestion: {query}"
)
URL_ENVS = ("LASER_REASON_BASE_URL", "OPENAI_BASE_URL")
KEY_ENVS = ("LASER_REASON_API_KEY", "OPENAI_API_KEY")


def load_queries(data: str | os.PathLike, split: str | None = None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``[(id, query)]`` to reason about, and the rationales the input already has (by id)."""
    from .data import _read_jsonl, load_reasoning

    path = Path(data)
    if path.is_dir():
        queries = {}
        for n, row in _read_jsonl(path / "queries.jsonl"):
            if "_id" not in row or not isinstance(row.get("text"), str):
                msg = f"{path / 'queries.jsonl'} line {n}: needs fields '_id' and 'text'."
                raise ValueError(msg)
            queries[str(row["_id"])] = row["text"]
        if split:
            qrels = path / "qrels" / f"{split}.tsv"
            if not qrels.is_file():
                msg = f"{qrels} not found; choose a split that has qrels, or omit --split."
                raise FileNotFoundError(msg)
            wanted = {line.split("\t")[0] for line in qrels.read_text(encoding="utf-8").splitlines()[1:] if line}
            queries = {k: v for k, v in queries.items() if k in wanted}
        return list(queries.items()), load_reasoning(path / "reasoning.jsonl")
    out, existing = [], {}
    for n, row in _read_jsonl(path):
        if not isinstance(row.get("query"), str):
            msg = f"{path} line {n}: missing field 'query'."
            raise ValueError(msg)
        rid = str(row.get("_id", row.get("id", n)))
        out.append((rid, row["query"]))
        if isinstance(row.get("reasoning"), str) and row["reasoning"].strip():
            existing[rid] = row["reasoning"]
    return out, existing


def local_generator(
    model: str, *, max_new_tokens: int = 256, device: str | None = None
) -> Callable[[list[str]], list[str]]:
    """Batched greedy generation with a local causal LM (chat template when the tokenizer has one)."""
    import torch

    from ..loading import load_model_and_tokenizer
    lm, tokenizer, _ = load_model_and_tokenizer(model, device=device)
    lm.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    def generate(prompts: list[str]) -> list[str]:
        if getattr(tokenizer, "chat_template", None):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in prompts]  # fmt: skip
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        else:
            enc = tokenizer(prompts, return_tensors="pt", padding=True)
        enc = enc.to(lm.device)
        with torch.inference_mode():
            out = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        return [tokenizer.decode(row[enc["input_ids"].shape[1] :], skip_special_tokens=True).strip() for row in out]

    return generate


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def http_generator(
    model: str,
    *,
    max_new_tokens: int = 256,
    timeout: float = 120.0,
    concurrency: int = 8,
    max_retries: int = 5,
) -> Callable[[list[str]], list[str]]:
    """An OpenAI-compatible chat completions endpoint, through the ``openai`` client.

    The URL and key come from the environment only (see the module docstring); the key is never logged. Each
    call sends its prompts with at most ``concurrency`` requests in flight and returns the answers in order.
    The client retries 408/409/429/5xx answers and connection errors up to ``max_retries`` times with
    exponential backoff and jitter (or the server's ``Retry-After``), then the call fails naming the status.
    """
    import openai

    base = _env(URL_ENVS)
    if not base:
        msg = f"The http generator needs the endpoint URL in {URL_ENVS[0]} (or {URL_ENVS[1]}), e.g. http://localhost:8000/v1."
        raise ValueError(msg)
    for name, value, least in (("concurrency", concurrency, 1), ("max_retries", max_retries, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            msg = f"{name} must be an integer >= {least}, got {value!r}."
            raise ValueError(msg)
    # Local servers (vLLM, llama.cpp) need no key, but the client insists on one; this placeholder is sent instead.
    client = openai.OpenAI(base_url=base, api_key=_env(KEY_ENVS) or "no-key", max_retries=max_retries, timeout=timeout)
    where = base.rstrip("/") + "/chat/completions"

    def one(prompt: str) -> str:
        try:
            response = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_new_tokens, temperature=0
            )
        except openai.APIStatusError as e:
            msg = f"{where} answered HTTP {e.status_code} (after up to {max_retries} retries): {str(e.message)[:300]}"
            raise RuntimeError(msg) from e
        except openai.APIConnectionError as e:
            msg = f"Could not reach {where} (after up to {max_retries} retries): {e}"
            raise RuntimeError(msg) from e
        content = response.choices[0].message.content if response.choices else None
        if not isinstance(content, str):
            msg = f"{where} returned no choices[0].message.content: {str(response)[:300]}"
            raise RuntimeError(msg)
        return content.strip()

    def generate(prompts: list[str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=min(concurrency, max(len(prompts), 1))) as pool:
            return list(pool.map(one, prompts))

    return generate


def write_rationales(
    queries: list[tuple[str, str]],
    output: str | os.PathLike,
    generate: Callable[[list[str]], list[str]],
    *,
    existing: dict[str, str] | None = None,
    batch_size: int = 8,
    source: str = "generated",
    prompt: str = REASON_PROMPT,
    show_progress: bool = True,
) -> int:
    """Append rationales for queries without one to ``output``; returns how many were written."""
    from tqdm.auto import tqdm

    from .data import load_reasoning

    output = Path(output)
    done = set(load_reasoning(output)) | set(existing or {})
    todo = [(qid, q) for qid, q in queries if qid not in done]
    output.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with (
        output.open("a", encoding="utf-8") as f,
        tqdm(total=len(todo), desc="Reasoning", disable=not show_progress) as bar,
    ):
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            texts = generate([prompt.format(query=q) for _, q in chunk])
            for (qid, _), text in zip(chunk, texts):
                f.write(json.dumps({"_id": qid, "reasoning": text, "source": source}, ensure_ascii=False) + "\n")
            f.flush()  # a killed run keeps every finished batch
            written += len(chunk)
            bar.update(len(chunk))
    return written


def merge_into_jsonl(records: str | os.PathLike, rationales: str | os.PathLike, target: str | os.PathLike) -> Path:
    """A copy of a JSONL training file with ``reasoning`` filled from ``rationales`` where it was missing."""
    from .data import _read_jsonl, load_reasoning

    found = load_reasoning(Path(rationales))
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for n, row in _read_jsonl(Path(records)):
            rid = str(row.get("_id", row.get("id", n)))
            if not (isinstance(row.get("reasoning"), str) and row["reasoning"].strip()) and rid in found:
                row["reasoning"] = found[rid]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(target)
    return target


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reason", help="write missing rationales", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="BEIR folder or JSONL training file")
    p.add_argument("--split", default=None, help="BEIR: only queries of this qrels split")
    p.add_argument("--output", default=None, help="reasoning JSONL (default: DATA/reasoning.jsonl for a BEIR folder)")
    p.add_argument("--generator", choices=("local", "http"), default="local")
    p.add_argument("--model", required=True, help="local: model path/id/alias; http: the endpoint's model name")
    p.add_argument("--batch_size", type=int, default=8, help="prompts per batch; each finished batch is written")
    p.add_argument("--max_new_tokens", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=8, help="http: requests in flight at once")
    p.add_argument("--max_retries", type=int, default=5, help="http: retries per request (backoff with jitter)")
    p.add_argument("--timeout", type=float, default=120.0, help="http: seconds per request")
    p.add_argument("--device", default=None)
    p.add_argument("--merge_into", default=None, help="JSONL input: also write a copy with the rationales filled in")


def run(args: argparse.Namespace) -> int:
    data = Path(args.data)
    if args.output is None and not data.is_dir():
        msg = "--output is required for a JSONL training file (a BEIR folder defaults to its reasoning.jsonl)."
        raise ValueError(msg)
    output = Path(args.output) if args.output else data / "reasoning.jsonl"
    queries, existing = load_queries(data, args.split)
    if args.generator == "local":
        generate = local_generator(args.model, max_new_tokens=args.max_new_tokens, device=args.device)
    else:
        generate = http_generator(args.model, max_new_tokens=args.max_new_tokens, timeout=args.timeout,
                                  concurrency=args.concurrency, max_retries=args.max_retries)  # fmt: skip
    n = write_rationales(queries, output, generate, existing=existing, batch_size=args.batch_size,
                         source=f"generated:{args.model}")  # fmt: skip
    print(f"Wrote {n} rationales to {output} ({len(queries) - n} already had one).")
    if args.merge_into:
        print(f"Wrote {merge_into_jsonl(data, output, args.merge_into)}")
    return 0
