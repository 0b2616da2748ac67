"""Turning query and document texts into token ids in a LaSER checkpoint's input format.

Truncation keeps the template whole (instruction, chat markup, think suffix) and cuts the text itself, so
an over-long input still ends where the model was trained to start thinking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from .config import LaSERConfig

Kind = Literal["query", "document"]
_TEXT_MARK = "\x00LASER_TEXT\x00"


@dataclass
class Formatter:
    tokenizer: PreTrainedTokenizerBase
    config: LaSERConfig

    def render(self, text: str, kind: Kind, instruction: str | None = None) -> str:
        """The full input string for one text, before tokenisation."""
        prefix, suffix = self.frame(kind, instruction)
        return prefix + text + suffix

    def frame(self, kind: Kind, instruction: str | None = None) -> tuple[str, str]:
        """The strings before and after the text for this kind and instruction (template, chat markup, suffix)."""
        cfg = self.config
        if kind == "query":
            template = cfg.query_template
            instruction = cfg.query_instruction if instruction is None else instruction
        else:
            template = cfg.document_template
            instruction = cfg.document_instruction if instruction is None else instruction
        body = template.replace("{text}", _TEXT_MARK).format(instruction=instruction)
        if cfg.use_chat_template:
            if not getattr(self.tokenizer, "chat_template", None):
                msg = (
                    "This tokenizer has no chat template, but the LaSER config asks for one "
                    "(use_chat_template=True). Pass use_chat_template=False (e.g. "
                    "LaSERConfig.from_preset('plain')) or a tokenizer with a chat template."
                )
                raise ValueError(msg)
            body = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
            )
        body += cfg.chat_suffix
        prefix, _, suffix = body.partition(_TEXT_MARK)
        return prefix, suffix

    def max_length(self, kind: Kind) -> int:
        return self.config.query_max_length if kind == "query" else self.config.document_max_length

    def tokenize(
        self, texts: list[str], kind: Kind, instruction: str | None = None, max_length: int | None = None
    ) -> tuple[list[list[int]], int]:
        """Token ids for each text, truncated to ``max_length`` (default: the kind's budget in the config); also
        the count of truncated texts.

        The whole rendered string is tokenised at once (as the released checkpoints were fed), so tokens at
        the template's seams are the ones the model saw in training.
        """
        prefix, suffix = self.frame(kind, instruction)
        max_length = self.max_length(kind) if max_length is None else max_length
        # A chat template carries its own special tokens (and BOS where the model uses one).
        add_special = not self.config.use_chat_template
        rendered = [prefix + text + suffix for text in texts]
        if not rendered:
            return [], 0
        encoded = self.tokenizer(rendered, add_special_tokens=add_special, return_offsets_mapping=True)
        out, truncated = [], 0
        for ids, offsets, text in zip(encoded["input_ids"], encoded["offset_mapping"], texts):
            if len(ids) > max_length:
                ids = self._truncate_text(ids, offsets, len(prefix), len(prefix) + len(text), max_length, kind)
                truncated += 1
            out.append(list(ids))
        return out, truncated

    def _truncate_text(
        self, ids: list[int], offsets: list[tuple[int, int]], start: int, end: int, max_length: int, kind: Kind
    ) -> list[int]:
        """Drop tokens from the end of the text span [start, end) until the sequence fits."""
        inside = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
        first, last = (inside[0], inside[-1]) if inside else (len(ids), len(ids) - 1)
        head, body, tail = ids[:first], ids[first : last + 1], ids[last + 1 :]
        budget = max_length - len(head) - len(tail)
        if budget < 1:
            msg = (
                f"The {kind} template alone takes {len(head) + len(tail)} tokens, which leaves no room for the "
                f"text within {kind}_max_length={max_length} (or max_length, where it was set). Raise it or shorten "
                "the instruction."
            )
            raise ValueError(msg)
        return head + body[:budget] + tail
