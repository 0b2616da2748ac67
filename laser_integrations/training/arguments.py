"""Training arguments as dataclass groups (Tevatron style), read from YAML with ``--key value`` overrides.

Every field of every group is one flat config key; ``laser-train --help`` lists them with their help text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import LaSERConfig
from .data import EXPLICIT_LAYOUTS, MISSING_REASONING, TRAJECTORY_TARGETS
from .losses import DOWNSAMPLE_RULES, EXPLICIT_WEIGHTINGS
from .objectives import get_objective
from .process_memory import GLIBC_MAX_MMAP_THRESHOLD


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ModelArguments:
    model: str | None = _f(None, "backbone: hub id, folder, .gguf file or 'smollm2-135m-offline' (required)")
    laser_config: dict = _f(
        {}, "LaSERConfig overrides for the input format, e.g. {chat_suffix: ''}; on the command line, merged key by "
        "key into the YAML file's mapping"
    )
    num_thinking_steps: int = _f(3, "K, latent thinking steps (paper: 3)")
    lora: bool = _f(True, "train a LoRA adapter (peft); false = full fine-tuning")
    lora_r: int = _f(64, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.1, "LoRA dropout")
    lora_target_modules: str = _f("all-linear", "LoRA targets: 'all-linear' or comma-separated module names")
    dtype: str = _f("float32", "dtype of the loaded weights (mixed precision is set by bf16)")
    gradient_checkpointing: bool = _f(
        False, "recompute each decoder layer's activations in backward (transformers' own; the latent steps then "
        "run without a KV cache, K prefills a text); see activation_checkpoint_tokens"
    )
    activation_checkpoint_tokens: int = _f(
        0, "recompute activations in backward one chunk of rows at a time, each of at most this many padded tokens "
        "(query, document and explicit views), keeping the latent steps' KV cache: peak memory follows one chunk "
        "instead of the batch, for about one more forward pass; same values; 0 = off"
    )
    teacher_model: str | None = _f(
        None, "frozen_teacher only: a separate frozen teacher checkpoint; none = the starting backbone"
    )
    allow_pickle: bool = _f(False, "also load pickled pytorch_model.bin weights (they run code: only files you trust)")


@dataclass
class DataArguments:
    train_data: str | None = _f(None, "JSONL file, BEIR folder, or datasets.save_to_disk folder (required)")
    data_format: str = _f("auto", "auto | jsonl | beir | hf_disk")
    corpus: str | None = _f(None, "JSONL corpus ({_id, title, text}) or BEIR folder that JSONL document ids refer to")
    split: str = _f("train", "BEIR qrels split")
    instruction: str | None = _f(None, "query instruction when a record has none; none = the LaSER config's")
    negatives_per_query: int = _f(1, "hard negatives per query (missing ones are sampled from the document pool)")
    hard_negatives: str = _f(
        "none", "none | bm25: before training, each query without negatives gets the mined_negatives documents BM25 "
        "ranks highest in the document pool (positives removed); each epoch draws negatives_per_query of them"
    )
    mined_negatives: int = _f(4, "hard_negatives: bm25 only: documents mined per query")
    missing_reasoning: str = _f(
        "use_query", "queries without a rationale (or one under 5 characters): use_query (the query text is the "
        "rationale, official code) | skip_explicit (latent terms only) | drop"
    )
    reasoning_separator: str = _f("\n\n", "separator between rationale segments (trajectory targets)")
    trajectory_targets: str = _f(
        "newline_token", "trajectory targets: newline_token (standalone separator tokens + the last token, "
        "official code) | text_spans (last token of each non-blank text segment)"
    )
    explicit_max_length: int = _f(1024, "token budget of the explicit view (query + rationale; EOS is appended)")
    explicit_eos_in_budget: bool = _f(False, "count the explicit view's EOS inside explicit_max_length; official: false")
    explicit_layout: str = _f(
        "paper", "explicit view: paper (query, rationale, EOS; v* at EOS) | in_prompt (rationale inside the query "
        "template after the question; v* where the latent view reads h_1)"
    )
    max_examples: int | None = _f(None, "use only the first N records (smoke tests)")


@dataclass
class LossArguments:
    objective: str = _f(
        "laser",
        "laser | no_explicit_view | no_latent_view | no_trajectory | no_output_kd | frozen_teacher | contrastive",
    )
    temperature: float = _f(0.02, "tau of both InfoNCE terms")
    temperature_kd: float = _f(0.02, "tau_kd of output distillation")
    temperature_mid: float = _f(0.05, "temperature of trajectory alignment")
    lambda_explicit: float = _f(1.0, "l1, weight of L_cl^E")
    lambda_out: float = _f(10.0, "l2, weight of L_kl^out")
    lambda_mid: float = _f(0.1, "l3, weight of L_kl^mid")
    downsample: str = _f(
        "linspace", "segment-to-step rule: linspace (official code; K = 1 takes the first) | evenly (K = 1 takes the "
        "last) | paper (floor(i*M/K))"
    )
    normalize_trajectory: bool = _f(True, "L2-normalise step states before trajectory alignment")
    distill_warmup_steps: int = _f(0, "optimizer steps with kl_out and kl_mid off (contrastive warm-up); paper: 0")
    distill_ramp_steps: int = _f(0, "steps after the warm-up over which kl_out, kl_mid weights rise 0 -> l2, l3")
    detach_soft_tokens: bool = _f(
        False, "latent view: no gradient through the soft tokens (their gradient dwarfs the rest at K > 1); paper: false"
    )
    explicit_weighting: str = _f(
        "rationale_mean",
        "explicit-view terms averaged over the queries with a rationale (rationale_mean, paper) or over the whole "
        "batch (batch_share: scaled by the share of the batch that has one)",
    )


@dataclass
class TrainingArguments:
    output_dir: str | None = _f(None, "where checkpoints, metrics.jsonl, loss_curve.png and final/ go (required)")
    max_steps: int = _f(-1, "optimizer steps; -1 = num_epochs over the data")
    num_epochs: float = _f(1.0, "epochs when max_steps is -1")
    per_device_batch_size: int = _f(8, "queries per device per micro-batch")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimizer step")
    learning_rate: float = _f(1e-4, "AdamW peak learning rate")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "linear warmup, fraction of the steps")
    max_grad_norm: float = _f(1.0, "gradient clipping (0 = off)")
    clip_grad_per_term: bool = _f(
        False,
        "clip each weighted loss term's gradient to max_grad_norm on its own, then add them (one backward pass per "
        "term, single process); false clips their sum",
    )
    clip_grad_per_term_split: bool = _f(
        False,
        "with clip_grad_per_term: clip each term to max_grad_norm / (terms backpropagated that step), so the summed "
        "step stays within max_grad_norm; false clips each term to max_grad_norm",
    )
    seed: int = _f(42, "seed of LoRA init, data order and negative sampling")
    bf16: str = _f("auto", "bf16 mixed precision: auto (on for CUDA) | true | false")
    save_steps: int = _f(500, "checkpoint every N optimizer steps (0 = only the final export)")
    save_total_limit: int = _f(2, "checkpoints kept (oldest removed)")
    logging_steps: int = _f(1, "write metrics.jsonl every N steps")
    resume_from_checkpoint: str | None = _f(None, "'latest' or a checkpoint folder")
    overwrite_output_dir: bool = _f(
        False, "start over in an output_dir that holds an earlier run (its checkpoints, metrics.jsonl and final/ are "
        "replaced)"
    )
    export: str = _f("merged", "final export: merged (LoRA merged, safetensors) | adapter")
    progress_bar: bool = _f(True, "show a tqdm bar with the loss terms")
    malloc_mmap_threshold: int = _f(
        0, "Linux (glibc): fix malloc's M_MMAP_THRESHOLD at this many bytes for the training process, so freed "
        "activations of that size or more go back to the system instead of staying in the heap (CPU training's peak "
        "memory; costs page faults); 0 = glibc's adaptive default, max 33554432"
    )


GROUPS = (ModelArguments, DataArguments, LossArguments, TrainingArguments)
CHOICES = {
    "data_format": ("auto", "jsonl", "beir", "hf_disk"),
    "missing_reasoning": MISSING_REASONING,
    "trajectory_targets": TRAJECTORY_TARGETS,
    "downsample": DOWNSAMPLE_RULES,
    "bf16": ("auto", "true", "false"),
    "export": ("merged", "adapter"),
    "explicit_weighting": EXPLICIT_WEIGHTINGS,
    "explicit_layout": EXPLICIT_LAYOUTS,
    "hard_negatives": ("none", "bm25"),
}
REQUIRED = ("model", "train_data", "output_dir")


@dataclass
class TrainConfig:
    """All argument groups together."""

    model: ModelArguments
    data: DataArguments
    loss: LossArguments
    train: TrainingArguments

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v
            for group in (self.model, self.data, self.loss, self.train)
            for k, v in dataclasses.asdict(group).items()
        }


def all_fields() -> dict[str, tuple[type, dataclasses.Field]]:
    return {f.name: (group, f) for group in GROUPS for f in dataclasses.fields(group)}


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(type without Optional, whether None is allowed)."""
    if isinstance(tp, str):
        tp = eval(tp, {**vars(typing), "dict": dict, "list": list})  # annotations are strings (PEP 563)
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def coerce(key: str, value: Any, source: str) -> Any:
    """``value`` (from YAML or the command line) as the type of config key ``key``, or a clear error."""
    _, fld = all_fields()[key]
    tp, optional = _base_type(fld.type)
    where = f"{source}: {key}"
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        msg = f"{where} must be a {tp.__name__}, got nothing."
        raise ValueError(msg)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if tp is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value) or {}
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        value = str(value)
        if key in CHOICES and value.lower() not in CHOICES[key]:
            msg = f"{where}: invalid value {value!r}. Valid values are: {list(CHOICES[key])}."
            raise ValueError(msg)
        return value.lower() if key in CHOICES else value
    except (TypeError, ValueError) as e:
        if "Valid values" in str(e):
            raise
        msg = f"{where} must be a {tp.__name__}, got {value!r}."
        raise ValueError(msg) from e


def build_config(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A validated :class:`TrainConfig` from flat ``key: value`` pairs (unknown keys are an error)."""
    fields_ = all_fields()
    unknown = sorted(set(values) - set(fields_))
    if unknown:
        msg = f"Unknown config keys {unknown} in {source}. Valid keys are: {sorted(fields_)}."
        raise ValueError(msg)
    per_group: dict[type, dict[str, Any]] = {g: {} for g in GROUPS}
    for key, value in values.items():
        group, _ = fields_[key]
        per_group[group][key] = coerce(key, value, source)
    config = TrainConfig(*(g(**per_group[g]) for g in GROUPS))
    validate(config, source)
    return config


def validate(config: TrainConfig, source: str = "config") -> None:
    """Cross-field checks; every message names the key and how to fix it."""
    values = config.to_dict()
    missing = [k for k in REQUIRED if not values[k]]
    if missing:
        msg = (
            f"Missing required config keys {missing} in {source}; set them in the YAML file or as --{missing[0]} VALUE."
        )
        raise ValueError(msg)
    get_objective(config.loss.objective)
    unknown = sorted(set(config.model.laser_config) - set(LaSERConfig.config_keys()))
    if unknown:
        msg = f"laser_config has unknown keys {unknown} ({source}). Valid keys are: {LaSERConfig.config_keys()}."
        raise ValueError(msg)
    positive = ("num_thinking_steps", "per_device_batch_size", "gradient_accumulation_steps", "explicit_max_length",
                "logging_steps", "lora_r", "lora_alpha", "save_total_limit", "mined_negatives")  # fmt: skip
    for key in positive:
        if values[key] < 1:
            msg = f"{key} must be >= 1, got {values[key]} ({source})."
            raise ValueError(msg)
    for key in ("temperature", "temperature_kd", "temperature_mid", "learning_rate"):
        if not values[key] > 0:
            msg = f"{key} must be > 0, got {values[key]} ({source})."
            raise ValueError(msg)
    for key in ("lambda_explicit", "lambda_out", "lambda_mid", "weight_decay", "max_grad_norm", "negatives_per_query",
                "save_steps", "distill_warmup_steps", "distill_ramp_steps"):  # fmt: skip
        if values[key] < 0:
            msg = f"{key} must be >= 0, got {values[key]} ({source})."
            raise ValueError(msg)
    if values["hard_negatives"] != "none" and values["negatives_per_query"] < 1:
        msg = (
            f"hard_negatives={values['hard_negatives']} needs negatives_per_query >= 1, got "
            f"{values['negatives_per_query']}: the mined negatives would never be used ({source})."
        )
        raise ValueError(msg)
    if values["clip_grad_per_term"] and not values["max_grad_norm"] > 0:
        msg = f"clip_grad_per_term needs max_grad_norm > 0 (the norm each term is clipped to) ({source})."
        raise ValueError(msg)
    if values["clip_grad_per_term_split"] and not values["clip_grad_per_term"]:
        msg = (
            f"clip_grad_per_term_split splits max_grad_norm among the terms clipped one by one; set "
            f"clip_grad_per_term: true as well, or drop clip_grad_per_term_split ({source})."
        )
        raise ValueError(msg)
    if not 0 <= values["warmup_ratio"] < 1:
        msg = f"warmup_ratio must be in [0, 1), got {values['warmup_ratio']} ({source})."
        raise ValueError(msg)
    if values["max_steps"] == 0 or values["max_steps"] < -1:
        msg = f"max_steps must be a positive number of steps or -1 (use num_epochs), got {values['max_steps']}."
        raise ValueError(msg)
    if values["max_steps"] == -1 and not values["num_epochs"] > 0:
        msg = f"num_epochs must be > 0 when max_steps is -1, got {values['num_epochs']} ({source})."
        raise ValueError(msg)
    if values["activation_checkpoint_tokens"] < 0:
        got = values["activation_checkpoint_tokens"]
        msg = f"activation_checkpoint_tokens must be >= 0 (0 = off), got {got} ({source})."
        raise ValueError(msg)
    if values["activation_checkpoint_tokens"] and values["gradient_checkpointing"]:
        msg = (
            "activation_checkpoint_tokens and gradient_checkpointing both recompute activations; set one: "
            f"activation_checkpoint_tokens keeps the latent steps' KV cache and is the faster of the two ({source})."
        )
        raise ValueError(msg)
    if not 0 <= values["malloc_mmap_threshold"] <= GLIBC_MAX_MMAP_THRESHOLD:
        got = values["malloc_mmap_threshold"]
        msg = (
            f"malloc_mmap_threshold must be 0 (glibc's adaptive default) or 1..{GLIBC_MAX_MMAP_THRESHOLD} bytes "
            f"(glibc's largest), got {got} ({source})."
        )
        raise ValueError(msg)
    if values["reasoning_separator"] == "":
        msg = "reasoning_separator must not be empty (default: a blank line, '\\n\\n')."
        raise ValueError(msg)
    if values["export"] == "adapter" and not values["lora"]:
        msg = "export: adapter needs lora: true; full fine-tuning exports merged weights (export: merged)."
        raise ValueError(msg)
    if values["teacher_model"] and config.loss.objective != "frozen_teacher":
        msg = f"teacher_model is only used by objective frozen_teacher, not {config.loss.objective!r}; remove it."
        raise ValueError(msg)
    check_output_dir(config, source)


def check_output_dir(config: TrainConfig, source: str = "config") -> None:
    """Refuse, before anything loads, an output_dir that is a file, or one holding an earlier run's export or
    metrics with no checkpoint to resume from (a fresh run would replace them; checkpoints are the trainer's
    own check)."""
    from .trainer import FINAL, METRICS, list_checkpoints

    t = config.train
    out = Path(str(t.output_dir)).expanduser()
    if out.exists() and not out.is_dir():
        msg = f"output_dir {str(out)!r} is a file, not a folder ({source}); give a folder (it is created if missing)."
        raise NotADirectoryError(msg)
    if t.overwrite_output_dir or not out.is_dir():
        return
    if list_checkpoints(out):
        return  # resume or refuse: the trainer decides, naming resume_from_checkpoint
    if t.resume_from_checkpoint and t.resume_from_checkpoint != "latest":
        return
    earlier = [name for name in (FINAL, METRICS) if (out / name).exists()]
    if earlier:
        msg = (
            f"output_dir {str(out)!r} already holds an earlier run ({', '.join(earlier)}) and no checkpoint to resume "
            f"from ({source}); a new run would replace them. Give a new output_dir, or pass --overwrite_output_dir "
            "true to replace them."
        )
        raise FileExistsError(msg)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        msg = f"Config file {str(path)!r} not found."
        raise FileNotFoundError(msg)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        msg = f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save it as UTF-8."
        raise ValueError(msg) from e
    except yaml.YAMLError as e:
        msg = f"{path} is not valid YAML: {e}"
        raise ValueError(msg) from e
    if not isinstance(data, dict):
        msg = f"{path} must hold a mapping of config keys to values, got {type(data).__name__}."
        raise ValueError(msg)
    return data


def _show_default(value: Any) -> str:
    """A default as one would write it on the command line or in YAML."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value and value.isprintable() and value.strip() == value else json.dumps(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` plus one ``--key VALUE`` option per config key, grouped, with help text."""
    parser.add_argument("--config", help="YAML file of config keys; --key VALUE options override it")
    for group in GROUPS:
        arg_group = parser.add_argument_group(group.__name__)
        for fld in dataclasses.fields(group):
            default = fld.default_factory() if fld.default_factory is not dataclasses.MISSING else fld.default
            tp, optional = _base_type(fld.type)
            if fld.name in CHOICES:
                metavar = "{" + ",".join(CHOICES[fld.name]) + "}"
            else:
                metavar = {bool: "BOOL", int: "INT", float: "FLOAT", dict: "MAPPING"}.get(tp, "STR")
            shown = _show_default(default).replace("%", "%%")  # argparse %-formats help texts
            arg_group.add_argument(
                f"--{fld.name}", default=argparse.SUPPRESS, metavar=metavar + ("|none" if optional else ""),
                help=f"{fld.metadata['help']} (default: {shown})",
            )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge the YAML file (if any) and the ``--key VALUE`` overrides into a validated config.

    A scalar option replaces the YAML's value; a mapping option (``--laser_config '{document_max_length: 512}'``)
    is merged key by key into the YAML's mapping, so overriding one key does not silently drop the others (the
    recipe's ``chat_suffix: ''`` would otherwise fall back to the backbone's default)."""
    config_file = getattr(args, "config", None)
    values: dict[str, Any] = load_yaml(config_file) if config_file else {}
    fields_ = all_fields()
    overrides = {k: v for k, v in vars(args).items() if k in fields_}
    for key, value in overrides.items():
        if key in values and _base_type(fields_[key][1].type)[0] is dict:
            base = coerce(key, values[key], str(config_file))
            value = {**base, **coerce(key, value, "command line")}
        values[key] = value
    source = f"{config_file} + command line" if config_file and overrides else config_file or "command line"
    return build_config(values, source)
