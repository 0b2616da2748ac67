"""Training objectives: LaSER's full method and each ablation of the paper's Table 5, by name.

Each objective says which views run and which loss terms count; the weights themselves (l1, l2, l3) come
from the training arguments, so ``laser`` with ``lambda_out: 1`` is still "the full method".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    """Which views and loss terms an objective uses.

    Args:
        name: registry key.
        description: one line for ``--help`` and logs.
        explicit_view: run the explicit view (query + rationale) at all.
        cl_explicit: train the explicit view contrastively (``L_cl^E``).
        kl_out: output distillation ``L_kl^out``.
        kl_mid: trajectory alignment ``L_kl^mid``.
        frozen_teacher: the explicit view runs on a frozen copy of the starting backbone (no gradients),
            instead of co-learning on the shared backbone.
        num_thinking_steps: force K (1 = last-token pooling); None keeps the configured K.
    """

    name: str
    description: str
    explicit_view: bool
    cl_explicit: bool
    kl_out: bool
    kl_mid: bool
    frozen_teacher: bool = False
    num_thinking_steps: int | None = None


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("laser", "full method: L_cl^L + l1 L_cl^E + l2 L_kl^out + l3 L_kl^mid", True, True, True, True),
        Objective("no_explicit_view", "latent view only, contrastive (L_cl^L), K steps", False, False, False, False),
        Objective(
            "no_latent_view", "K = 1 (no latent steps): L_cl^L + l1 L_cl^E + l2 L_kl^out", True, True, True, False,
            num_thinking_steps=1,
        ),
        Objective("no_trajectory", "full method without trajectory alignment (l3 = 0)", True, True, True, False),
        Objective("no_output_kd", "full method without output distillation (l2 = 0)", True, True, False, True),
        Objective(
            "frozen_teacher", "explicit view from the frozen starting backbone: L_cl^L + l2 L_kl^out + l3 L_kl^mid",
            True, False, True, True, frozen_teacher=True,
        ),
        Objective("contrastive", "plain contrastive baseline: L_cl^L with last-token pooling (K = 1)", False, False,
                  False, False, num_thinking_steps=1),
    )
}  # fmt: skip


def get_objective(name: str) -> Objective:
    """The registered objective called ``name``, or a ``ValueError`` listing the valid ones."""
    if name not in OBJECTIVES:
        msg = f"Invalid objective {name!r}. Valid objectives are: {sorted(OBJECTIVES)}."
        raise ValueError(msg)
    return OBJECTIVES[name]
