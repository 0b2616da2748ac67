"""Configuration of a LaSER encoder: how texts are formatted and how many latent steps it thinks.

The same list of keys drives ``save`` and ``load`` (``laser_config.json`` beside the weights), so the two
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_NAME = "laser_config.json"

# The official evaluation harness's instruction for a retrieval task that has none (src/eval/laser_model.py
# LaserModel.get_instruction, wording and all), so a query without an instruction reads as it did there.
OFFICIAL_FALLBACK_INSTRUCTION = "Retrieval relevant passage for the given query."
DEFAULT_QUERY_INSTRUCTION = OFFICIAL_FALLBACK_INSTRUCTION
# The project's earlier default, which the CPU recipes (SmolLM2) keep so their runs stay comparable.
PROJECT_QUERY_INSTRUCTION = "Given a question, retrieve documents that help answer the question"
# The official harness embeds queries and documents at up to 8192 tokens (src/scripts/run_eval.sh max_length).
OFFICIAL_EVAL_MAX_LENGTH = 8192
QWEN3_EMPTY_THINK = "<think>\n\n</think>\n\n"


@dataclass
class LaSERConfig:
    """How a LaSER encoder formats its inputs and pools its latent steps.

    The defaults reproduce the input format of the released ``Alibaba-NLP/LaSER-Qwen3-*`` checkpoints
    (see ``PRESETS["laser-qwen3"]``): ``Instruct: {instruction}\\nQuery: {text}`` for queries, the bare text
    for documents, both wrapped by the tokenizer's chat template as one user message with the generation
    prompt and followed by Qwen3's empty thinking block. The max lengths default to 512 tokens, the official
    training script's; the ``laser-qwen3`` preset raises them to 8192, the official evaluation's.

    Args:
        num_thinking_steps: K, the number of step states that are mean-pooled. 1 is last-token pooling.
        query_template: Format of a query; ``{text}`` and ``{instruction}`` are filled in.
        document_template: Format of a document; ``{text}`` (and ``{instruction}``) are filled in.
        query_instruction: Instruction used for queries when a call does not give one.
        document_instruction: Instruction for documents (unused by the default template).
        use_chat_template: Wrap the formatted text as one user message with the generation prompt.
        chat_suffix: Text appended after the formatted input. ``None`` (the default): Qwen3's empty think block
            when ``use_chat_template`` is on, nothing when it is off; set it to keep a suffix either way.
        query_max_length: Token budget of a query, template included.
        document_max_length: Token budget of a document, template included.
        normalize: L2-normalise the pooled embedding (cosine similarity = dot product).
    """

    num_thinking_steps: int = 3
    query_template: str = "Instruct: {instruction}\nQuery: {text}"
    document_template: str = "{text}"
    query_instruction: str = DEFAULT_QUERY_INSTRUCTION
    document_instruction: str = ""
    use_chat_template: bool = True
    chat_suffix: str | None = None
    query_max_length: int = 512
    document_max_length: int = 512
    normalize: bool = True

    def __post_init__(self) -> None:
        check_types(self.to_dict())
        validate_num_thinking_steps(self.num_thinking_steps)
        if self.chat_suffix is None:
            # The think block belongs to Qwen3's chat format; without the chat template it would surprise.
            self.chat_suffix = default_chat_suffix(self.use_chat_template)
        for name in ("query_template", "document_template"):
            template = getattr(self, name)
            if "{text}" not in template:
                msg = f"{name} must contain the placeholder '{{text}}', got {template!r}."
                raise ValueError(msg)
            try:
                template.format(text="", instruction="")
            except (KeyError, IndexError, ValueError) as e:
                msg = (
                    f"{name} {template!r} has a placeholder other than '{{text}}' and '{{instruction}}' "
                    f"(escape literal braces as '{{{{' and '}}}}'): {e}"
                )
                raise ValueError(msg) from e
        for name in ("query_max_length", "document_max_length"):
            if getattr(self, name) < 1:
                msg = f"{name} must be a positive number of tokens, got {getattr(self, name)}."
                raise ValueError(msg)

    # -- save / load ---------------------------------------------------------------------------------------
    @classmethod
    def config_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.config_keys()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> LaSERConfig:
        """A config from ``data`` (``source``, e.g. the file it was read from, is named in errors)."""
        where = f" in {source}" if source else ""
        if not isinstance(data, dict):
            msg = f"A LaSER config must be a JSON object of keys to values{where}, got {type(data).__name__}."
            raise ValueError(msg)
        unknown = sorted(set(data) - set(cls.config_keys()))
        if unknown:
            msg = f"Unknown LaSERConfig keys {unknown}{where}. Valid keys are: {cls.config_keys()}."
            raise ValueError(msg)
        check_types(data, source)
        try:
            return cls(**data)
        except ValueError as e:
            if not source:
                raise
            msg = f"{source}: {e}"
            raise ValueError(msg) from e

    def replace(self, **overrides: Any) -> LaSERConfig:
        """A copy with ``overrides`` applied (validated like the constructor).

        Turning ``use_chat_template`` on or off also switches a default ``chat_suffix`` to the new default.
        """
        data = self.to_dict()
        switched = "use_chat_template" in overrides and "chat_suffix" not in overrides
        if switched and data["chat_suffix"] == default_chat_suffix(data["use_chat_template"]):
            data["chat_suffix"] = None
        return self.from_dict({**data, **overrides})

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LaSERConfig:
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            msg = f"{path} is not valid JSON: {e}"
            raise ValueError(msg) from e
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> LaSERConfig:
        """A named input format: ``"laser-qwen3"`` (released checkpoints) or ``"plain"`` (no chat template)."""
        if name not in PRESETS:
            msg = f"Unknown preset {name!r}. Valid presets are: {sorted(PRESETS)}."
            raise ValueError(msg)
        return PRESETS[name].replace(**overrides)


def default_chat_suffix(use_chat_template: bool) -> str:
    return QWEN3_EMPTY_THINK if use_chat_template else ""


_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", str: "a string"}


def check_types(data: dict[str, Any], source: str | None = None) -> None:
    """Raise a ``ValueError`` naming the source, key, value and expected type of the first ill-typed value.

    JSON has no implicit conversions here: ``"false"`` is not a boolean (it would be truthy) and ``"512"`` is
    not an integer.
    """
    types = {f.name: str(f.type) for f in dataclasses.fields(LaSERConfig)}
    for key, value in data.items():
        annotation = types.get(key, "")
        if annotation.endswith(" | None") and value is None:
            continue  # e.g. chat_suffix=None: the default for the chat-template setting
        expected = {"int": int, "str": str, "bool": bool}.get(annotation.removesuffix(" | None"), None)
        if expected is None:
            continue
        ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
        if not ok:
            where = f"{source}: " if source else ""
            msg = f"{where}{key} must be {_TYPE_NAMES[expected]}, got {type(value).__name__} {value!r}."
            raise ValueError(msg)


def validate_num_thinking_steps(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        msg = f"num_thinking_steps must be an integer >= 1 (1 is plain last-token pooling), got {k!r}."
        raise ValueError(msg)
    return k


PRESETS: dict[str, LaSERConfig] = {
    # Input format of Alibaba-NLP/LaSER-Qwen3-{0.6B,4B,8B}, reconstructed from the reference scripts.
    # Max lengths as the official evaluation (run_eval.sh: 8192); training recipes set 512 (train_laser_qwen3.sh).
    "laser-qwen3": LaSERConfig(query_max_length=OFFICIAL_EVAL_MAX_LENGTH, document_max_length=OFFICIAL_EVAL_MAX_LENGTH),
    # Raw text in, for backbones without a chat template (tiny test models, base checkpoints).
    "plain": LaSERConfig(query_template="{instruction}{text}", query_instruction="", use_chat_template=False, chat_suffix=""),
}
