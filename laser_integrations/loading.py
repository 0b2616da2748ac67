"""Loading LaSER checkpoints (hub id, folder, LoRA adapter folder, GGUF file) and saving them atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import cached_file

from .config import CONFIG_NAME, PRESETS, LaSERConfig

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
RELEASED_PRESET = "laser-qwen3"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


class CorruptCheckpointError(ValueError):
    """A weights file of a checkpoint is truncated or not a valid safetensors file."""


@dataclass(frozen=True)
class CheckpointSource:
    """Where a loaded model came from: the name as given, the folder it resolved to, and its weight files."""

    given: str
    resolved: str
    weight_files: tuple[str, ...]


# model -> its source, for the provenance of collections (laser_integrations.provenance); weak, so it never keeps
# a model alive.
_SOURCES: weakref.WeakKeyDictionary[nn.Module, CheckpointSource] = weakref.WeakKeyDictionary()
# Set by the CLIs' --allow-pickle for the duration of one command (see allowing_pickle).
_ALLOW_PICKLE = False


def checkpoint_source(model: nn.Module) -> CheckpointSource | None:
    """The :class:`CheckpointSource` of a model returned by :func:`load_model_and_tokenizer`, else None."""
    return _SOURCES.get(model)


@contextlib.contextmanager
def allowing_pickle(allow: bool = True) -> Iterator[None]:
    """Accept pickled ``.bin`` weights in every load inside the block (what the CLIs' ``--allow-pickle`` does)."""
    global _ALLOW_PICKLE
    before, _ALLOW_PICKLE = _ALLOW_PICKLE, allow or _ALLOW_PICKLE
    try:
        yield
    finally:
        _ALLOW_PICKLE = before


def _weight_files(folder: str, gguf_file: str | None) -> tuple[str, ...]:
    if gguf_file:
        return (os.path.join(folder, gguf_file),)
    if not os.path.isdir(folder):
        return ()
    return tuple(sorted(str(p) for p in Path(folder).iterdir() if p.suffix in WEIGHT_SUFFIXES[:2] and p.is_file()))


def check_safetensors(files: tuple[str, ...] | list[str]) -> None:
    """Raise :class:`CorruptCheckpointError` naming the first ``.safetensors`` file whose header does not read
    (a truncated download or copy, or another file under that name); reads headers only."""
    from safetensors import SafetensorError, safe_open

    for file in files:
        if not file.endswith(".safetensors"):
            continue
        try:
            with safe_open(file, framework="pt"):
                pass
        except (SafetensorError, OSError) as e:
            msg = (
                f"{file} is truncated or not a valid safetensors file ({e}); download or copy the checkpoint "
                "again (for a hub model, delete it from the Hugging Face cache first)."
            )
            raise CorruptCheckpointError(msg) from e

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def resolve_device(device: str | torch.device | None) -> torch.device:
    from .encoder import default_device

    if device is None or device == "auto":
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        msg = f"Invalid device {device!r}; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'."
        raise ValueError(msg) from e


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    from .encoder import default_dtype

    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        msg = f"Invalid dtype {dtype!r}. Valid dtypes are: {sorted(_DTYPES)} or 'auto'."
        raise ValueError(msg)
    return _DTYPES[name]


def released_dtype(device: torch.device) -> torch.dtype:
    """dtype of a checkpoint read with the released preset (no ``laser_config.json``) when none is asked for:
    float16 on CUDA, as the official evaluation harness runs them (run_eval.sh ``--precision fp16``); the
    usual default (:func:`~laser_integrations.encoder.default_dtype`) elsewhere."""
    from .encoder import default_dtype

    return torch.float16 if device.type == "cuda" else default_dtype(device)


def _looks_local(name: str) -> bool:
    """A name a user meant as a path (hub ids are 'org/name' or 'name')."""
    return name.startswith((".", "/", "~")) or os.sep + os.sep in name or name.count("/") > 1 or name.endswith(".gguf")


def _find_file(name_or_path: str, filename: str, hub: dict[str, Any]) -> str | None:
    """Path of ``filename`` in a local folder or hub repo, or None when the repo has no such file."""
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, filename)
        return path if os.path.isfile(path) else None
    return cached_file(
        name_or_path,
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub,
    )


def _check_local_folder(folder: Path, allow_pickle: bool) -> None:
    if not (folder / "config.json").is_file():
        msg = (
            f"{str(folder)!r} has no config.json, so it is not a transformers checkpoint folder "
            f"(nor a LoRA adapter folder with {ADAPTER_CONFIG}, nor a folder with one .gguf file)."
        )
        raise FileNotFoundError(msg)
    for name in ("config.json", CONFIG_NAME, ADAPTER_CONFIG):
        if (folder / name).is_file():
            try:
                json.loads((folder / name).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                msg = f"{folder / name} is not valid JSON ({e}); restore it from the checkpoint's source."
                raise CorruptCheckpointError(msg) from e
    if any((folder / name).is_file() for name in SAFE_WEIGHTS):
        return
    if any((folder / name).is_file() for name in PICKLE_WEIGHTS):
        if allow_pickle:
            return
        msg = (
            f"{str(folder)!r} holds only pickled weights (pytorch_model.bin), which can run arbitrary code when "
            "loaded. Convert them to safetensors, or, if you trust the files, pass --allow-pickle (command line) "
            "or allow_pickle=True (Python)."
        )
        raise ValueError(msg)
    msg = f"{str(folder)!r} has a config.json but no weights ({' or '.join(SAFE_WEIGHTS)})."
    raise FileNotFoundError(msg)


def load_laser_config(name_or_path: str, hub: dict[str, Any], *fallbacks: str) -> LaSERConfig:
    """The checkpoint's own ``laser_config.json``, else a fallback's, else the released checkpoints' preset."""
    for candidate in (name_or_path, *fallbacks):
        path = _find_file(candidate, CONFIG_NAME, hub)
        if path:
            return LaSERConfig.load(path)
    logger.info("%s has no %s; using the %r input format.", name_or_path, CONFIG_NAME, RELEASED_PRESET)
    return PRESETS[RELEASED_PRESET].replace()


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    local_files_only: bool = False,
    trust_remote_code: bool = False,
    revision: str | None = None,
    token: str | None = None,
    allow_pickle: bool = False,
    gguf_file: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[nn.Module, PreTrainedTokenizerBase, LaSERConfig]:
    """Load (model, tokenizer, LaSER config) from any supported source; see ``LaSEREncoder.from_pretrained``."""
    from .offline import default_laser_config, resolve_model_path

    # Offline aliases ("smollm2-135m-offline") name a file inside an installed wheel.
    given = os.fspath(name_or_path)
    name = resolve_model_path(given)
    allow_pickle = allow_pickle or _ALLOW_PICKLE
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    hub: dict[str, Any] = {"local_files_only": local_files_only, "revision": revision, "token": token}
    if cache_dir is not None:
        hub["cache_dir"] = os.fspath(cache_dir)

    if name.endswith(".gguf") and os.path.isfile(name):
        name, gguf_file = os.path.dirname(os.path.abspath(name)), os.path.basename(name)
    elif os.path.exists(name):
        if not os.path.isdir(name):
            msg = f"{name!r} is a file, but not a .gguf file; pass the checkpoint's folder instead."
            raise ValueError(msg)
        if gguf_file is None and not os.path.isfile(os.path.join(name, "config.json")):
            ggufs = sorted(p.name for p in Path(name).glob("*.gguf"))
            if len(ggufs) == 1:
                gguf_file = ggufs[0]
            elif len(ggufs) > 1:
                msg = f"{name!r} holds several GGUF files {ggufs}; choose one with gguf_file=..."
                raise ValueError(msg)
    elif _looks_local(name) or local_files_only and not _find_file(name, "config.json", hub):
        msg = f"No LaSER checkpoint at {name!r}: no such folder or file (and not a model id found in the local cache)."
        raise FileNotFoundError(msg)

    adapter_config = None if gguf_file else _find_file(name, ADAPTER_CONFIG, hub)
    if adapter_config:
        model, tokenizer, config = _load_lora(name, adapter_config, device, torch_dtype, hub, trust_remote_code,
                                              allow_pickle, model_kwargs, tokenizer_kwargs, config_kwargs)  # fmt: skip
        return _record_source(model, given, name, adapter_config), tokenizer, config

    if os.path.isdir(name) and gguf_file is None:
        _check_local_folder(Path(name), allow_pickle)
    model_file = os.path.join(name, gguf_file) if gguf_file else name
    has_config = bool(_find_file(name, CONFIG_NAME, hub))
    if dtype in (None, "auto") and not has_config and default_laser_config(model_file) is None:
        torch_dtype = released_dtype(device)
    load_kwargs: dict[str, Any] = {**hub, "trust_remote_code": trust_remote_code}
    model_kw = {**load_kwargs, "dtype": torch_dtype, **(model_kwargs or {})}
    # transformers looks for a LoRA adapter with only token/revision (no local_files_only, no cache_dir), which
    # reaches the hub (and waits on its retries offline) for a cached hub id; adapters are handled above anyway.
    model_kw.setdefault("adapter_kwargs", {k: hub[k] for k in ("local_files_only", "cache_dir") if k in hub})
    tok_kw = {**load_kwargs, **(tokenizer_kwargs or {})}
    if gguf_file:
        model_kw["gguf_file"] = tok_kw["gguf_file"] = gguf_file
    elif not allow_pickle:
        model_kw["use_safetensors"] = True
    from safetensors import SafetensorError

    if os.path.isdir(name):
        check_safetensors(_weight_files(name, gguf_file))
    try:
        if config_kwargs:
            model_kw["config"] = _load_config(name, config_kwargs, load_kwargs, gguf_file)
        model = AutoModelForCausalLM.from_pretrained(name, **model_kw)
        tokenizer = AutoTokenizer.from_pretrained(name, **tok_kw)
    except SafetensorError as e:
        msg = (
            f"The weights of {name!r} are truncated or corrupt ({e}); download or copy the checkpoint again "
            "(for a hub model, delete it from the Hugging Face cache first)."
        )
        raise CorruptCheckpointError(msg) from e
    except OSError as e:
        msg = f"Could not load a LaSER checkpoint from {name!r}: {e}"
        raise OSError(msg) from e
    if gguf_file:
        # The GGUF weights were dequantised to torch_dtype; drop the quantizer so the model saves normally.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    # A bare backbone we ship a recipe for gets that recipe's input format rather than the released preset.
    if not has_config and (recipe := default_laser_config(model_file)) is not None:
        config = recipe
    else:
        config = load_laser_config(name, hub)
    marker = _find_file(name, "config.json", hub)
    return _record_source(model.to(device), given, name, marker, gguf_file), tokenizer, config


def _record_source(
    model: nn.Module, given: str, name: str, marker: str | None, gguf_file: str | None = None
) -> nn.Module:
    """Remember where ``model`` came from; ``marker`` is a file of the checkpoint (its folder is the resolved one,
    which for a hub id is the cached snapshot of one commit)."""
    if marker:
        folder = os.path.dirname(os.path.abspath(marker))
    else:
        folder = os.path.abspath(name) if os.path.isdir(name) else name
    files = _weight_files(folder, gguf_file)
    base = checkpoint_source(model)  # a LoRA adapter's base, recorded by the inner load
    if base is not None and base.resolved != folder:
        files = (*base.weight_files, *files)
    _SOURCES[model] = CheckpointSource(given=given, resolved=folder, weight_files=files)
    return model


def _load_lora(
    folder: str,
    adapter_config_path: str,
    device: torch.device,
    torch_dtype: torch.dtype,
    hub: dict[str, Any],
    trust_remote_code: bool,
    allow_pickle: bool,
    model_kwargs: dict[str, Any] | None,
    tokenizer_kwargs: dict[str, Any] | None,
    config_kwargs: dict[str, Any] | None,
) -> tuple[nn.Module, PreTrainedTokenizerBase, LaSERConfig]:
    """Base model + LoRA adapter, merged into plain weights (no adapter overhead at inference)."""
    try:
        from peft import PeftModel
    except ImportError as e:  # pragma: no cover - peft is a core dependency
        msg = "Loading a LoRA adapter needs peft: `pip install peft`."
        raise ImportError(msg) from e
    base = json.loads(Path(adapter_config_path).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        msg = f"{adapter_config_path} does not name its base model (base_model_name_or_path)."
        raise ValueError(msg)
    model, tokenizer, base_config = load_model_and_tokenizer(
        base, device=device, dtype=torch_dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
        model_kwargs=model_kwargs, tokenizer_kwargs=tokenizer_kwargs, config_kwargs=config_kwargs, **hub,
    )  # fmt: skip
    if os.path.isdir(folder):
        check_safetensors(_weight_files(folder, None))  # a truncated adapter_model.safetensors names itself
    model = PeftModel.from_pretrained(model, folder, **hub).merge_and_unload()
    if _find_file(folder, "tokenizer_config.json", hub):
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code, **hub,
                                                  **(tokenizer_kwargs or {}))  # fmt: skip
    config = load_laser_config(folder, hub) if _find_file(folder, CONFIG_NAME, hub) else base_config
    return model.to(device), tokenizer, config


def _load_config(name: str, config_kwargs: dict[str, Any], load_kwargs: dict[str, Any], gguf_file: str | None) -> Any:
    """The checkpoint's model config with ``config_kwargs`` applied; a key the config does not have is an error."""
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    config, unused = AutoConfig.from_pretrained(
        name, **load_kwargs, **extra, **config_kwargs, return_unused_kwargs=True
    )
    if unused:
        msg = (
            f"config_kwargs {sorted(unused)} are not attributes of {type(config).__name__}, so they would change "
            "nothing; check their spelling against the checkpoint's config.json."
        )
        raise ValueError(msg)
    return config


def save_model_and_tokenizer(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, config: LaSERConfig, folder: str | os.PathLike
) -> Path:
    """Write a loadable LaSER folder atomically: into a temporary sibling, then renamed into place.

    A peft model is written as its adapter (plus tokenizer and config); anything else as safetensors weights.
    An existing ``folder`` is replaced only once the new one is complete.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(tmp, safe_serialization=True) if _is_peft(model) else model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config.save(tmp)
        replace_folder(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def replace_folder(new: Path, target: Path) -> None:
    """Move the complete folder ``new`` to ``target``, replacing what was there only after the move."""
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


def _is_peft(model: nn.Module) -> bool:
    return callable(getattr(model, "get_base_model", None)) and hasattr(model, "peft_config")
