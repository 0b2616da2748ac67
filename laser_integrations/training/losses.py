"""LaSER's loss terms as pure functions on tensors, each small enough to check by hand.

Layout used throughout: ``B`` queries, documents ``(N, H)`` where query ``b``'s positive sits at row
``positive_index[b]`` and every other row (other queries' positives, all hard negatives) is a negative.
``mask`` (bool, ``(B,)``) selects the queries that take part; a term over no query is ``0`` (still part
of the graph, so ``backward`` works on every process).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

DownsampleRule = Literal["linspace", "evenly", "paper"]
DOWNSAMPLE_RULES = ("linspace", "evenly", "paper")
ExplicitWeighting = Literal["rationale_mean", "batch_share"]
EXPLICIT_WEIGHTINGS = ("rationale_mean", "batch_share")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.device, torch.bool)
    if not bool(mask.any()):
        return values.sum() * 0.0
    return values[mask].mean()


def info_nce(
    queries: torch.Tensor,
    documents: torch.Tensor,
    positive_index: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE with in-batch and hard negatives: ``-log softmax(q . D^T / tau)[positive]``, averaged.

    Args:
        queries: (B, H) query embeddings (normalised by the caller).
        documents: (N, H) every document of the (global) batch.
        positive_index: (B,) row of each query's positive in ``documents``.
        temperature: tau.
        mask: (B,) queries to average over; all when None.
    """
    logits = queries.float() @ documents.float().T / temperature
    per_query = F.cross_entropy(logits, positive_index.to(logits.device), reduction="none")
    return _masked_mean(per_query, mask)


@torch.no_grad()
def top1_accuracy(queries: torch.Tensor, documents: torch.Tensor, positive_index: torch.Tensor) -> torch.Tensor:
    """Share of queries whose positive scores highest among ``documents`` (a diagnostic, no gradient).

    Logged per step for each view: an explicit view (the teacher) near chance, 1 / len(documents), means the
    distillation terms pull the latent view toward arbitrary documents.
    """
    if queries.shape[0] == 0:
        return torch.tensor(float("nan"))
    best = (queries.float() @ documents.float().T).argmax(dim=-1)
    return (best == positive_index.to(best.device)).float().mean()


def distribution_kl(teacher_scores: torch.Tensor, student_scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-wise ``KL(softmax(t / T) || softmax(s / T))`` (summed over documents), shape (rows,).

    The teacher side is detached: only the student learns from the teacher's distribution.
    """
    teacher_log = torch.log_softmax(teacher_scores.detach().float() / temperature, dim=-1)
    student_log = torch.log_softmax(student_scores.float() / temperature, dim=-1)
    return (teacher_log.exp() * (teacher_log - student_log)).sum(dim=-1)


def output_kl(
    teacher_scores: torch.Tensor,
    student_scores: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_kl^out``: KL from the explicit view's score distribution to the latent view's, averaged over queries.

    Args:
        teacher_scores: (B, N) ``v* . v_D`` (detached here).
        student_scores: (B, N) ``v . v_D``.
        temperature: tau_kd.
        mask: (B,) queries with an explicit view.
    """
    return _masked_mean(distribution_kl(teacher_scores, student_scores, temperature), mask)


def trajectory_kl(
    teacher_states: torch.Tensor,
    student_states: torch.Tensor,
    documents: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """``L_kl^mid``: step-by-step alignment of the latent trajectory to the rationale's trajectory.

    For each step ``i``, the KL between ``softmax(h^E_{j_i} . v_D / T)`` (teacher, detached) and
    ``softmax(h_i . v_D / T)`` (student); averaged over the K steps and the queries.

    Args:
        teacher_states: (B, K, H) explicit-view states at the downsampled segment ends.
        student_states: (B, K, H) latent step states h_1..h_K.
        documents: (N, H) document embeddings.
        temperature: 0.05 in the reference code.
        mask: (B,) queries with an explicit view.
        normalize: L2-normalise the states before scoring (reference code).
    """
    if teacher_states.shape != student_states.shape:
        msg = f"teacher_states {tuple(teacher_states.shape)} and student_states {tuple(student_states.shape)} differ."
        raise ValueError(msg)
    teacher, student = teacher_states.float(), student_states.float()
    if normalize:
        teacher, student = F.normalize(teacher, dim=-1), F.normalize(student, dim=-1)
    docs = documents.float()
    teacher_scores = torch.einsum("bkh,nh->bkn", teacher, docs)
    student_scores = torch.einsum("bkh,nh->bkn", student, docs)
    per_step = distribution_kl(teacher_scores, student_scores, temperature)  # (B, K)
    return _masked_mean(per_step.mean(dim=-1), mask)


def downsample_indices(num_segments: int, num_steps: int, rule: DownsampleRule = "linspace") -> list[int]:
    """Which of M segment-end states align to the K latent steps (0-based indices into the M segments).

    Rules:
        ``"linspace"`` (default, the official ``encode_teacher``): ``torch.linspace(0, M - 1, K)`` truncated to
        integers, so K = 1 takes the first segment. When M < K every segment is used once, in order, and the
        last is repeated to fill K.
        ``"evenly"`` (the project's earlier default): the same for K > 1 in exact integer arithmetic,
        ``floor(i * (M - 1) / (K - 1))`` for ``i = 0..K-1``, but K = 1 takes the last segment.
        ``"paper"``: the paper's ``j_i = floor(i * M / K)`` for ``i = 1..K`` (1-based), so the last step always
        takes the last segment; indices below 1 (only when M < K) are raised to 1.

    Examples:
        >>> downsample_indices(7, 3), downsample_indices(3, 3), downsample_indices(2, 3), downsample_indices(4, 1)
        ([0, 3, 6], [0, 1, 2], [0, 1, 1], [0])
        >>> downsample_indices(4, 1, "evenly")
        [3]
        >>> downsample_indices(7, 3, "paper"), downsample_indices(2, 3, "paper")
        ([1, 3, 6], [0, 0, 1])
    """
    if num_segments < 1 or num_steps < 1:
        msg = f"downsampling needs at least one segment and one step, got M={num_segments}, K={num_steps}."
        raise ValueError(msg)
    if rule in ("linspace", "evenly") and num_segments < num_steps:
        return list(range(num_segments)) + [num_segments - 1] * (num_steps - num_segments)
    if rule == "linspace":
        return torch.linspace(0, num_segments - 1, num_steps).long().tolist()
    if rule == "evenly":
        if num_segments < num_steps:
            return list(range(num_segments)) + [num_segments - 1] * (num_steps - num_segments)
        if num_steps == 1:
            return [num_segments - 1]
        return [i * (num_segments - 1) // (num_steps - 1) for i in range(num_steps)]
    if rule == "paper":
        return [max(math.floor(i * num_segments / num_steps), 1) - 1 for i in range(1, num_steps + 1)]
    msg = f"Invalid downsample rule {rule!r}. Valid rules are: {list(DOWNSAMPLE_RULES)}."
    raise ValueError(msg)


def downsample_states(states: torch.Tensor, num_steps: int, rule: DownsampleRule = "linspace") -> torch.Tensor:
    """(M, H) segment-end states -> (K, H) by :func:`downsample_indices`."""
    index = torch.tensor(downsample_indices(states.shape[0], num_steps, rule), device=states.device)
    return states.index_select(0, index)


def distillation_scale(step: int, warmup_steps: int = 0, ramp_steps: int = 0) -> float:
    """Factor on the distillation weights (l2, l3) at optimizer step ``step`` (0-based).

    ``0`` for the first ``warmup_steps`` steps (a contrastive warm-up), then a linear ramp that reaches ``1`` on
    the ``ramp_steps``-th step after the warm-up, ``1`` from then on. With both at 0 (the paper) it is always 1.

    Examples:
        >>> [distillation_scale(s, warmup_steps=2, ramp_steps=4) for s in range(7)]
        [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    if warmup_steps < 0 or ramp_steps < 0:
        msg = f"warmup_steps and ramp_steps must be >= 0, got {warmup_steps} and {ramp_steps}."
        raise ValueError(msg)
    if step < warmup_steps:
        return 0.0
    if ramp_steps == 0:
        return 1.0
    return min(1.0, (step - warmup_steps + 1) / ramp_steps)


def explicit_share(num_explicit: int, batch_size: int, weighting: ExplicitWeighting = "rationale_mean") -> float:
    """Factor on the explicit-view terms (``L_cl^E``, ``L_kl^out``, ``L_kl^mid``), which are means over the queries
    that have a rationale.

    ``"rationale_mean"`` (the paper, reference code): 1, so two rationales in a batch of eight weigh as much as
    eight. ``"batch_share"``: ``num_explicit / batch_size``, which turns those means into means over the whole
    batch where a query without a rationale contributes 0.
    """
    if weighting == "rationale_mean":
        return 1.0
    if weighting == "batch_share":
        return num_explicit / batch_size if batch_size else 0.0
    msg = f"Invalid explicit weighting {weighting!r}. Valid weightings are: {list(EXPLICIT_WEIGHTINGS)}."
    raise ValueError(msg)
