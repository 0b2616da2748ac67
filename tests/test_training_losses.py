"""Each loss term against a hand computation on small fixed tensors (plain Python math, not torch)."""

from __future__ import annotations

import math

import pytest
import torch

from laser_integrations.training.losses import (
    distillation_scale,
    downsample_indices,
    downsample_states,
    explicit_share,
    info_nce,
    output_kl,
    top1_accuracy,
    trajectory_kl,
)
from laser_integrations.training.objectives import OBJECTIVES, get_objective


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


Q = [[1.0, 0.0], [0.6, 0.8]]
D = [[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]]  # positives of query 0 and 1 at rows 0 and 2


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def test_info_nce_equals_hand_computation():
    tau = 0.5
    expected = []
    for q, pos in zip(Q, (0, 2)):
        logits = [_dot(q, d) / tau for d in D]
        expected.append(-math.log(_softmax(logits)[pos]))
    got = info_nce(torch.tensor(Q), torch.tensor(D), torch.tensor([0, 2]), tau)
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    masked = info_nce(torch.tensor(Q), torch.tensor(D), torch.tensor([0, 2]), tau, mask=torch.tensor([False, True]))
    assert masked.item() == pytest.approx(expected[1], rel=1e-6)


def test_top1_accuracy_counts_queries_whose_positive_scores_highest():
    docs = torch.eye(3)
    queries = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.0, 0.1, 0.9]])  # best: docs 0, 0, 2
    assert top1_accuracy(queries, docs, torch.tensor([0, 1, 2])).item() == pytest.approx(2 / 3)
    assert top1_accuracy(queries, docs, torch.tensor([1, 1, 0])).item() == 0.0
    assert math.isnan(top1_accuracy(queries[:0], docs, torch.tensor([], dtype=torch.long)).item())


def test_term_over_no_query_is_zero_and_differentiable():
    q = torch.tensor(Q, requires_grad=True)
    loss = info_nce(q, torch.tensor(D), torch.tensor([0, 2]), 0.1, mask=torch.tensor([False, False]))
    loss.backward()
    assert loss.item() == 0.0 and q.grad is not None


def test_output_kl_equals_hand_computation_and_detaches_teacher():
    teacher = [[0.9, 0.1, 0.3], [0.2, 0.5, 0.4]]
    student = [[0.5, 0.4, 0.1], [0.1, 0.2, 0.9]]
    tau = 0.2
    expected = [_kl(_softmax([x / tau for x in t]), _softmax([x / tau for x in s])) for t, s in zip(teacher, student)]
    t = torch.tensor(teacher, requires_grad=True)
    s = torch.tensor(student, requires_grad=True)
    got = output_kl(t, s, tau)
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    got.backward()
    assert t.grad is None and s.grad is not None
    only_second = output_kl(torch.tensor(teacher), torch.tensor(student), tau, mask=torch.tensor([False, True]))
    assert only_second.item() == pytest.approx(expected[1], rel=1e-6)


def test_trajectory_kl_normalises_states_and_averages_steps():
    teacher = [[[2.0, 0.0], [0.0, 3.0]]]  # one query, K = 2; normalised to unit vectors
    student = [[[1.0, 1.0], [3.0, 4.0]]]
    docs = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    tau = 0.05

    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    per_step = []
    for ht, hs in zip(teacher[0], student[0]):
        p = _softmax([_dot(unit(ht), d) / tau for d in docs])
        q = _softmax([_dot(unit(hs), d) / tau for d in docs])
        per_step.append(_kl(p, q))
    got = trajectory_kl(torch.tensor(teacher), torch.tensor(student), torch.tensor(docs), tau)
    assert got.item() == pytest.approx(sum(per_step) / 2, rel=1e-5)
    # Without normalisation the raw states are scored.
    raw = []
    for ht, hs in zip(teacher[0], student[0]):
        raw.append(_kl(_softmax([_dot(ht, d) / 1.0 for d in docs]), _softmax([_dot(hs, d) / 1.0 for d in docs])))
    got_raw = trajectory_kl(torch.tensor(teacher), torch.tensor(student), torch.tensor(docs), 1.0, normalize=False)
    assert got_raw.item() == pytest.approx(sum(raw) / 2, rel=1e-5)


def test_trajectory_kl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        trajectory_kl(torch.zeros(1, 2, 4), torch.zeros(1, 3, 4), torch.zeros(5, 4), 0.05)


@pytest.mark.parametrize(
    ("m", "k", "rule", "expected"),
    [
        (7, 3, "evenly", [0, 3, 6]),  # M > K: first, middle, last
        (10, 4, "evenly", [0, 3, 6, 9]),
        (3, 3, "evenly", [0, 1, 2]),  # M = K: every segment
        (2, 3, "evenly", [0, 1, 1]),  # M < K: the last one repeated
        (1, 3, "evenly", [0, 0, 0]),
        (5, 1, "evenly", [4]),
        (7, 3, "paper", [1, 3, 6]),  # j_i = floor(i*M/K), 1-based
        (3, 3, "paper", [0, 1, 2]),
        (2, 3, "paper", [0, 0, 1]),
    ],
)
def test_downsample_indices(m, k, rule, expected):
    assert downsample_indices(m, k, rule) == expected


def test_downsample_states_picks_rows():
    states = torch.arange(7.0).unsqueeze(1).repeat(1, 2)
    assert downsample_states(states, 3).tolist() == [[0.0, 0.0], [3.0, 3.0], [6.0, 6.0]]
    assert downsample_states(states[:2], 3).tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]


def test_downsample_errors_name_the_problem():
    with pytest.raises(ValueError, match="Valid rules are"):
        downsample_indices(3, 3, "nearest")
    with pytest.raises(ValueError, match="at least one segment"):
        downsample_indices(0, 3)


def test_objective_registry_covers_table_5():
    assert set(OBJECTIVES) == {
        "laser", "no_explicit_view", "no_latent_view", "no_trajectory", "no_output_kd", "frozen_teacher", "contrastive",
    }  # fmt: skip
    assert get_objective("contrastive").num_thinking_steps == 1 and not get_objective("contrastive").explicit_view
    assert not get_objective("no_trajectory").kl_mid and get_objective("no_trajectory").kl_out
    with pytest.raises(ValueError, match="Valid objectives are"):
        get_objective("full")


@pytest.mark.parametrize(
    ("warmup", "ramp", "expected"),
    [
        (0, 0, [1.0] * 5),  # the paper: distillation on from the first step
        (3, 0, [0.0, 0.0, 0.0, 1.0, 1.0]),  # warm-up, then at full weight
        (0, 4, [0.25, 0.5, 0.75, 1.0, 1.0]),  # ramp only
        (1, 2, [0.0, 0.5, 1.0, 1.0, 1.0]),
    ],
)
def test_distillation_scale_schedules(warmup, ramp, expected):
    assert [distillation_scale(s, warmup, ramp) for s in range(5)] == pytest.approx(expected)


def test_distillation_scale_rejects_negative_lengths():
    with pytest.raises(ValueError, match="must be >= 0, got -1 and 0"):
        distillation_scale(0, -1, 0)


def test_explicit_share_weightings():
    assert explicit_share(2, 8, "rationale_mean") == 1.0
    assert explicit_share(2, 8, "batch_share") == 0.25
    assert explicit_share(0, 8, "batch_share") == 0.0
    with pytest.raises(ValueError, match=r"Invalid explicit weighting 'share'. Valid weightings are: \['rationale_mean'"):
        explicit_share(1, 8, "share")  # type: ignore[arg-type]
