"""What the LaSER Haystack embedders share: their load parameters, serialization and the shared encoder."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from typing import Any, ClassVar, Literal, TypeVar

from haystack import default_from_dict, default_to_dict
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from laser_integrations.backend import get_encoder
from laser_integrations.config import validate_num_thinking_steps
from laser_integrations.encoder import LaSEREncoder
from laser_integrations.options import (
    MULTI_DEVICE_REFUSAL,
    check_backend,
    check_instruction_is_used,
    check_mapping,
    max_length_from_tokenizer_kwargs,
)
from laser_integrations.quantization import check_precision, check_truncate_dim

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Alibaba-NLP/LaSER-Qwen3-0.6B"
T = TypeVar("T", bound="LaSEREmbedderBase")

# LaSEREncoder.encode keywords the components set from their own parameters (encode_kwargs may not set them).
_ENCODE_FROM_PARAMETER = {
    "kind": "the component (query or document)", "instruction": "instruction", "batch_size": "batch_size",
    "show_progress": "progress_bar", "num_thinking_steps": "num_thinking_steps", "normalize": "normalize_embeddings",
    "max_length": "tokenizer_kwargs={'model_max_length': N}", "truncate_dim": "truncate_dim", "precision": "precision",
    "quantization_ranges": "quantization_ranges",
}  # fmt: skip
# SentenceTransformer.encode keywords a ported pipeline may carry in encode_kwargs, and what to do instead.
_ST_ENCODE_KWARGS = {
    "prompt": "LaSER has no prompts: its query template takes the task `instruction` (and `prefix`/`suffix` add "
    "text around each input).",
    "prompt_name": "LaSER has no named prompts: its query template takes the task `instruction`.",
    "task": "LaSER checkpoints have no task-specific modules; put the task in `instruction`.",
    "show_progress_bar": "set the component's `progress_bar`.",
    "normalize_embeddings": "set the component's `normalize_embeddings`.",
    "convert_to_numpy": "the component returns Haystack embeddings (lists of numbers), whatever this says.",
    "convert_to_tensor": "the component returns Haystack embeddings (lists of numbers), whatever this says.",
    "output_value": "LaSER gives one pooled vector per text (the mean of its K thinking states); it has no "
    "token embeddings.",
    "device": f"set the component's `device`; {MULTI_DEVICE_REFUSAL}",
    "pool": MULTI_DEVICE_REFUSAL,
    "chunk_size": MULTI_DEVICE_REFUSAL,
    "processing_kwargs": "LaSER tokenises with its own template (kept whole when a text is truncated); the length "
    "budget is tokenizer_kwargs={'model_max_length': N}.",
}


def check_encode_kwargs(encode_kwargs: dict[str, Any] | None) -> None:
    """Refuse encode_kwargs keys that clash with a component parameter or that mean nothing for LaSER."""
    check_mapping("encode_kwargs", encode_kwargs)
    if not encode_kwargs:
        return
    valid = sorted(set(inspect.signature(LaSEREncoder.encode).parameters) - {"self", "texts", *_ENCODE_FROM_PARAMETER})
    problems = []
    for key in encode_kwargs:
        if key in valid:
            continue
        if key in _ENCODE_FROM_PARAMETER:
            problems.append(f"{key!r} is set by the component's {_ENCODE_FROM_PARAMETER[key]}; set that instead.")
        elif key in _ST_ENCODE_KWARGS:
            problems.append(f"{key!r}: {_ST_ENCODE_KWARGS[key]}")
        else:
            problems.append(f"{key!r} is not a LaSEREncoder.encode keyword.")
    if problems:
        accepted = f"it accepts {valid}" if valid else "today every encode option is a component parameter"
        msg = (
            "encode_kwargs cannot be honoured: " + " ".join(problems)
            + f" (encode_kwargs are extra keyword arguments for LaSEREncoder.encode; {accepted}.)"
        )
        raise ValueError(msg)


def default_token() -> Secret:
    """The Hugging Face token from ``HF_API_TOKEN`` or ``HF_TOKEN``, when either is set (env vars only)."""
    return Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False)


class LaSEREmbedderBase:
    """Load parameters, lazy shared loading, encoding and (de)serialization of the LaSER embedders.

    Subclasses list their init parameters in ``_init_parameters``; ``to_dict`` writes exactly those.
    """

    _init_parameters: ClassVar[tuple[str, ...]]
    _kind: ClassVar[Literal["query", "document"]]

    def _set_common(
        self,
        *,
        model: str,
        device: ComponentDevice | None,
        token: Secret | None,
        prefix: str,
        suffix: str,
        batch_size: int,
        progress_bar: bool,
        normalize_embeddings: bool,
        trust_remote_code: bool,
        local_files_only: bool,
        revision: str | None,
        model_kwargs: dict[str, Any] | None,
        tokenizer_kwargs: dict[str, Any] | None,
        num_thinking_steps: int | None,
        instruction: str | None,
        truncate_dim: int | None,
        config_kwargs: dict[str, Any] | None,
        precision: str,
        encode_kwargs: dict[str, Any] | None,
        backend: str,
        quantization_ranges: list[list[float]] | None,
    ) -> None:
        # Only validation here: the model loads in warm_up (or the first run), so pipelines build fast.
        for name, value in (("model", model), ("prefix", prefix), ("suffix", suffix)):
            if not isinstance(value, str):
                msg = f"{name} must be a string, got {type(value).__name__}."
                raise TypeError(msg)
        if instruction is not None and not isinstance(instruction, str):
            msg = f"instruction must be a string or None (None: the checkpoint's default), got {type(instruction).__name__}."
            raise TypeError(msg)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive integer, got {batch_size!r}."
            raise ValueError(msg)
        if num_thinking_steps is not None:
            validate_num_thinking_steps(num_thinking_steps)
        for name, value in (("model_kwargs", model_kwargs), ("tokenizer_kwargs", tokenizer_kwargs),
                            ("config_kwargs", config_kwargs)):  # fmt: skip
            check_mapping(name, value)
        max_length_from_tokenizer_kwargs(tokenizer_kwargs)
        check_truncate_dim(truncate_dim)
        check_precision(precision, quantization_ranges)
        check_encode_kwargs(encode_kwargs)
        check_backend(backend)
        self.model = model
        self.device = ComponentDevice.resolve_device(device)
        self.token = token
        self.prefix = prefix
        self.suffix = suffix
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.normalize_embeddings = normalize_embeddings
        self.trust_remote_code = trust_remote_code
        self.local_files_only = local_files_only
        self.revision = revision
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.num_thinking_steps = num_thinking_steps
        self.instruction = instruction
        self.truncate_dim = truncate_dim
        self.config_kwargs = config_kwargs
        self.precision = precision
        self.encode_kwargs = encode_kwargs
        self.backend = backend
        self.quantization_ranges = quantization_ranges
        self.encoder: LaSEREncoder | None = None

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model}

    def warm_up(self) -> None:
        """Load the encoder, or reuse the one already loaded with the same load parameters."""
        if self.encoder is not None:
            return
        encoder = get_encoder(
            self.model,
            device=self.device.to_torch_str(),
            token=self.token.resolve_value() if self.token else None,
            trust_remote_code=self.trust_remote_code,
            local_files_only=self.local_files_only,
            revision=self.revision,
            model_kwargs=self.model_kwargs,
            tokenizer_kwargs=self.tokenizer_kwargs,
            config_kwargs=self.config_kwargs,
        )
        # Checked before any text is embedded: an instruction, truncate_dim or ranges that do not fit this model.
        check_instruction_is_used(encoder, self._kind, self.instruction, "instruction")
        if self.truncate_dim is not None:
            if self.truncate_dim > encoder.dimension:
                msg = f"truncate_dim={self.truncate_dim} is larger than {self.model!r}'s dimension {encoder.dimension}."
                raise ValueError(msg)
            logger.warning(
                "truncate_dim=%d: LaSER checkpoints are not trained for truncated embeddings (Matryoshka), so the "
                "first %d of %d dimensions may retrieve worse than the full vector; measure it on your data.",
                self.truncate_dim, self.truncate_dim, encoder.dimension,
            )  # fmt: skip
        if self.quantization_ranges is not None:
            width = self.truncate_dim or encoder.dimension
            columns = len(self.quantization_ranges[0])
            if columns != width:
                msg = f"quantization_ranges has {columns} columns, but the embeddings have {width} dimensions."
                raise ValueError(msg)
        self.encoder = encoder

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so loading does not block the event loop."""
        await asyncio.to_thread(self.warm_up)

    def _embed(self, texts: list[str], kind: Literal["query", "document"]) -> list[list[float]]:
        if self.encoder is None:
            self.warm_up()
        assert self.encoder is not None  # set by warm_up
        return self.encoder.encode(
            texts,
            kind=kind,
            instruction=self.instruction,
            batch_size=self.batch_size,
            show_progress=self.progress_bar,
            num_thinking_steps=self.num_thinking_steps,
            normalize=self.normalize_embeddings,
            max_length=max_length_from_tokenizer_kwargs(self.tokenizer_kwargs),
            truncate_dim=self.truncate_dim,
            precision=self.precision,
            quantization_ranges=self.quantization_ranges,
            **(self.encode_kwargs or {}),
        ).tolist()

    def to_dict(self) -> dict[str, Any]:
        """Serialize to ``{"type", "init_parameters"}``; the token only as the names of its env vars."""
        params = {name: copy.deepcopy(getattr(self, name)) for name in self._init_parameters}
        data = default_to_dict(self, **params)
        if data["init_parameters"].get("model_kwargs") is not None:
            serialize_hf_model_kwargs(data["init_parameters"]["model_kwargs"])
        return data

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Rebuild a component from :meth:`to_dict`'s output."""
        data = copy.deepcopy(data)
        init_params = data.get("init_parameters", {})
        if init_params.get("model_kwargs") is not None:
            deserialize_hf_model_kwargs(init_params["model_kwargs"])
        return default_from_dict(cls, data)
