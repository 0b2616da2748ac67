"""The dual-view model: latent view (student) and explicit view (teacher) on one backbone, and the loss.

The latent view is :func:`laser_integrations.latent.latent_think`, the code path of inference, run with
gradients. The explicit view is one forward pass over query + rationale + EOS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..latent import LatentOutput, latent_think, left_padded_position_ids, pool_steps, unwrap_causal_lm
from .losses import explicit_share, info_nce, output_kl, top1_accuracy, trajectory_kl
from .objectives import Objective

TERMS = ("cl_latent", "cl_explicit", "kl_out", "kl_mid")


@dataclass
class LossWeights:
    temperature: float = 0.02
    temperature_kd: float = 0.02
    temperature_mid: float = 0.05
    lambda_explicit: float = 1.0
    lambda_out: float = 10.0
    lambda_mid: float = 0.1
    normalize_trajectory: bool = True
    explicit_weighting: str = "rationale_mean"
    detach_soft_tokens: bool = False


def explicit_view(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states (batch, seq, hidden) of the explicit view (left-padded, one pass)."""
    decoder = unwrap_causal_lm(model).get_decoder()
    out = decoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=left_padded_position_ids(attention_mask),
        use_cache=False,
    )
    return out.last_hidden_state


def no_gather(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    return t, 0


def row_chunks(rows: int, seq_len: int, max_tokens: int) -> list[slice]:
    """Consecutive row ranges of at most ``max_tokens`` padded tokens each (one row at least)."""
    per = max(1, max_tokens // max(seq_len, 1))
    return [slice(start, min(start + per, rows)) for start in range(0, rows, per)]


def trim_left_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Drop the leading columns that are padding in every row of a left-padded chunk; returns their count."""
    first = int(mask.any(dim=0).long().argmax())
    return ids[:, first:], mask[:, first:], first


class DualViewModel(nn.Module):
    """Computes every loss term of an objective for one batch from :class:`DualViewCollator`.

    Args:
        model: the backbone (a peft model for LoRA, or a transformers causal LM).
        objective: which views and terms are on.
        weights: temperatures and lambdas.
        num_thinking_steps: K of the latent view.
        group_size: documents per query (positive + hard negatives).
        gather: ``tensor -> (all processes' tensors, offset of this process's rows)``; keeps the gradient of
            the local rows (see ``trainer.gather_with_grad``). Identity on one process.
        teacher: frozen teacher for ``frozen_teacher``; None uses the backbone with its LoRA adapter disabled.
        checkpoint_tokens: activation checkpointing by view: each view (queries, documents, explicit) runs in
            chunks of rows of at most this many padded tokens, and a chunk's activations are recomputed in
            backward instead of kept. Peak memory then follows one chunk, not the batch, for one more forward
            pass; the latent steps keep their KV cache (layer-wise checkpointing cannot) and the values are the
            same. 0 keeps every activation (the default).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        weights: LossWeights,
        num_thinking_steps: int,
        group_size: int,
        gather: Callable[[torch.Tensor], tuple[torch.Tensor, int]] = no_gather,
        teacher: nn.Module | None = None,
        checkpoint_tokens: int = 0,
    ):
        super().__init__()
        if checkpoint_tokens < 0:
            msg = f"checkpoint_tokens must be >= 0 (0 = off), got {checkpoint_tokens}."
            raise ValueError(msg)
        self.model = model
        self.objective, self.weights = objective, weights
        self.k, self.group_size, self.gather = num_thinking_steps, group_size, gather
        self.teacher = teacher
        self.checkpoint_tokens = checkpoint_tokens
        if teacher is not None:
            teacher.requires_grad_(False).eval()

    def active_terms(self) -> list[str]:
        o = self.objective
        flags = {"cl_latent": True, "cl_explicit": o.cl_explicit, "kl_out": o.kl_out, "kl_mid": o.kl_mid}
        return [t for t in TERMS if flags[t]]

    def _explicit_states(self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor,
                         positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit view's last-position state (rows, H) and its states at ``positions`` (rows, K, H)."""
        hidden = explicit_view(model, ids, mask)
        index = positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return hidden[:, -1], hidden.gather(1, index)

    def _chunked(self, fn: Callable[..., Any], ids: torch.Tensor, mask: torch.Tensor,
                 *extra: torch.Tensor, recompute: bool) -> list[Any]:
        """``fn(ids, mask, *extra)`` per row chunk (see ``checkpoint_tokens``); ``extra`` holds positions."""
        outputs = []
        for rows in row_chunks(ids.shape[0], ids.shape[1], self.checkpoint_tokens):
            chunk_ids, chunk_mask, cut = trim_left_padding(ids[rows], mask[rows])
            args = (chunk_ids, chunk_mask, *(e[rows] - cut for e in extra))
            outputs.append(checkpoint(fn, *args, use_reentrant=False) if recompute else fn(*args))
        return outputs

    def _latent(self, ids: torch.Tensor, mask: torch.Tensor) -> LatentOutput:
        detach = self.weights.detach_soft_tokens
        if not self.checkpoint_tokens:
            return latent_think(self.model, ids, mask, self.k, detach_soft_tokens=detach)

        def steps(chunk_ids: torch.Tensor, chunk_mask: torch.Tensor) -> torch.Tensor:
            return latent_think(self.model, chunk_ids, chunk_mask, self.k, detach_soft_tokens=detach).step_states

        step_states = torch.cat(self._chunked(steps, ids, mask, recompute=torch.is_grad_enabled()))
        return LatentOutput(step_states=step_states, embeddings=pool_steps(step_states))

    def _teacher_states(self, ids: torch.Tensor, mask: torch.Tensor,
                        positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.objective.frozen_teacher:
            return self._explicit(self.model, ids, mask, positions)
        with torch.no_grad():
            if self.teacher is not None:
                return self._explicit(self.teacher, ids, mask, positions)
            disable = getattr(self.model, "disable_adapter", None)
            if disable is None:
                msg = "frozen_teacher without a teacher model needs a LoRA (peft) backbone to disable its adapter."
                raise ValueError(msg)
            with disable():
                return self._explicit(self.model, ids, mask, positions)

    def _explicit(self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor,
                  positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.checkpoint_tokens:
            return self._explicit_states(model, ids, mask, positions)

        def states(chunk_ids: torch.Tensor, chunk_mask: torch.Tensor, chunk_positions: torch.Tensor) -> Any:
            return self._explicit_states(model, chunk_ids, chunk_mask, chunk_positions)

        chunks = self._chunked(states, ids, mask, positions, recompute=torch.is_grad_enabled())
        return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])

    def forward(self, batch: dict[str, torch.Tensor], distill_scale: float = 1.0) -> dict[str, Any]:
        """Loss terms, ``loss`` (their weighted sum), ``explicit_fraction`` and diagnostics for one batch.

        ``weighted`` maps each term that this batch computed and that has a non-zero weight this step to its
        weighted value (what ``loss`` adds up): per-term gradient clipping backpropagates them one at a time.

        Diagnostics (no gradient): ``acc_latent`` and, with an explicit view, ``acc_explicit``: the in-batch top-1
        accuracy of each view (NaN for the explicit view when the batch has no rationale).

        Args:
            batch: from :class:`~laser_integrations.training.data.DualViewCollator`.
            distill_scale: factor on l2 and l3 this step (see :func:`~.losses.distillation_scale`).
        """
        w = self.weights
        latent = self._latent(batch["query_ids"], batch["query_mask"])
        docs_local = self._latent(batch["doc_ids"], batch["doc_mask"]).embeddings
        docs, offset = self.gather(docs_local)
        n_queries = latent.embeddings.shape[0]
        positive = offset + torch.arange(n_queries, device=docs.device) * self.group_size
        terms = {"cl_latent": info_nce(latent.embeddings, docs, positive, w.temperature)}
        diagnostics = {"acc_latent": top1_accuracy(latent.embeddings, docs, positive)}

        rows = batch["explicit_rows"]
        zero = latent.embeddings.sum() * 0.0  # a term this batch cannot compute (no rationale): 0, in the graph
        if self.objective.explicit_view and rows.numel() > 0:
            last, trajectory = self._teacher_states(batch["explicit_ids"], batch["explicit_mask"],
                                                    batch["segment_positions"])  # (rows, H), (rows, K, H)
            v_star = F.normalize(last.float(), dim=-1)  # EOS is the last position (left padding)
            student = latent.embeddings[rows]
            diagnostics["acc_explicit"] = top1_accuracy(v_star, docs, positive[rows])
            if self.objective.cl_explicit:
                terms["cl_explicit"] = info_nce(v_star, docs, positive[rows], w.temperature)
            if self.objective.kl_out:
                terms["kl_out"] = output_kl(v_star @ docs.detach().T, student @ docs.T, w.temperature_kd)
            if self.objective.kl_mid:
                terms["kl_mid"] = trajectory_kl(trajectory.detach(), latent.step_states[rows], docs,
                                                w.temperature_mid, normalize=w.normalize_trajectory)  # fmt: skip
        computed = [term for term in self.active_terms() if term in terms]
        for term in self.active_terms():
            terms.setdefault(term, zero)
        share = explicit_share(rows.numel(), n_queries, w.explicit_weighting)  # type: ignore[arg-type]
        lambdas = {"cl_latent": 1.0, "cl_explicit": share * w.lambda_explicit,
                   "kl_out": share * distill_scale * w.lambda_out, "kl_mid": share * distill_scale * w.lambda_mid}  # fmt: skip
        terms["loss"] = sum(lambdas[t] * terms[t] for t in self.active_terms())
        weighted = {t: lambdas[t] * terms[t] for t in computed if lambdas[t] != 0}
        terms["explicit_fraction"] = torch.tensor(rows.numel() / max(n_queries, 1))
        if self.objective.explicit_view:
            diagnostics.setdefault("acc_explicit", torch.tensor(float("nan")))  # no rationale in this batch
        return {**terms, **diagnostics, "weighted": weighted}
