"""What the LaSER Haystack embedders share: their load parameters, serialization and the shared encoder."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, ClassVar, Literal, TypeVar

from haystack import default_from_dict, default_to_dict
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from laser_integrations.backend import get_encoder
from laser_integrations.config import validate_num_thinking_steps
from laser_integrations.encoder import LaSEREncoder

DEFAULT_MODEL = "Alibaba-NLP/LaSER-Qwen3-0.6B"
T = TypeVar("T", bound="LaSEREmbedderBase")


def default_token() -> Secret:
    """The Hugging Face token from ``HF_API_TOKEN`` or ``HF_TOKEN``, when either is set (env vars only)."""
    return Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False)


class LaSEREmbedderBase:
    """Load parameters, lazy shared loading, encoding and (de)serialization of the LaSER embedders.

    Subclasses list their init parameters in ``_init_parameters``; ``to_dict`` writes exactly those.
    """

    _init_parameters: ClassVar[tuple[str, ...]]

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
        self.encoder: LaSEREncoder | None = None

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model}

    def warm_up(self) -> None:
        """Load the encoder, or reuse the one already loaded with the same load parameters."""
        if self.encoder is None:
            self.encoder = get_encoder(
                self.model,
                device=self.device.to_torch_str(),
                token=self.token.resolve_value() if self.token else None,
                trust_remote_code=self.trust_remote_code,
                local_files_only=self.local_files_only,
                revision=self.revision,
                normalize=self.normalize_embeddings,
                model_kwargs=self.model_kwargs,
                tokenizer_kwargs=self.tokenizer_kwargs,
            )

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
