"""The ``laser`` objective's defaults against golden values of the official LaSER training code.

Where the numbers come from: github.com/ignorejjj/LaSER at commit d6026640f45d0dbbe2c2589268f80607b185fcee
(``src/tevatron/retriever/dataset.py`` ``TrainDatasetWithRewrite``, ``collator.py`` ``TrainCollatorWithRewrite``,
``modeling/laser.py`` ``LaSERModel.encode_query`` / ``encode_teacher`` / ``forward``, ``src/scripts/
train_laser_qwen3.sh``), reimplemented outside this repository as an independent reference
(``/tmp/official_ref/official_reference.py`` of issue 23, run once on 2026-12-04 with torch 2.13 CPU): the batch
below, the Qwen3 tokenizer, a tiny random Qwen3 (``tiny_causal_lm(len(tokenizer), "qwen3", seed=0)``'s config,
``torch.manual_seed(0)``), float32. docs/fidelity.md lists what the reference reconstructs where the released
code does not run. Positions are 0-based indices into the unpadded explicit view (its ids, then EOS).
"""

from __future__ import annotations

import pytest
import torch

from laser_integrations.config import LaSERConfig
from laser_integrations.encoder import LaSEREncoder
from laser_integrations.testing.tiny import tiny_causal_lm
from laser_integrations.training.data import DualViewCollator, TrainExample, separator_token_id
from laser_integrations.training.model import DualViewModel, LossWeights
from laser_integrations.training.objectives import get_objective

LONG = "\n\n".join(f"Step {i}: the quantity grows by a factor of {i} so we keep going" for i in range(90))
MATH, PHYSICS = "Given a math question, retrieve the theorem", "Given a physics question, retrieve the theorem"
BATCH = [  # query, instruction, rationale, positive, negative
    # several "\n\n": only the standalone token (id 271) counts; ".\n\n" and "\n\n\n" are other tokens
    ("What bounds the lengths of a prefix code?", MATH,
     "We need a prefix code.\n\nThe codeword lengths obey a sum\n\nSo the Kraft inequality applies\n\n\nDone",
     "Kraft inequality: a prefix code satisfies sum 2^-l <= 1", "The product rule for derivatives"),
    ("Why does a moving clock run slow?", PHYSICS,  # no "\n\n": one segment, the last token
     "Time dilation follows from special relativity, nothing else is needed",
     "Special relativity: moving clocks are dilated", "Bayes theorem updates a prior"),
    ("Is 91 a prime number?", MATH, "7x13",  # under 5 characters: the query text replaces it
     "Prime numbers are divisible only by one and themselves", "Entropy of a random variable"),
    ("Compute the posterior\n\nThe prior is 0.3 and the likelihood 0.8", MATH, None,  # missing: the query text
     "Bayes theorem: posterior is prior times likelihood over evidence", "The integral of a derivative"),
    ("How fast does the sequence grow?", MATH, LONG,  # cut to 1024 tokens, then EOS
     "Ratio test for growth of sequences", "The pigeonhole principle"),
]  # fmt: skip

# Recorded from the reference run (see the module docstring).
LENGTHS = [58, 47, 43, 63, 1025]
SEGMENTS = [
    [49, 56], [45], [41], [47, 61],
    [50, 68, 86, 104, 122, 140, 158, 176, 194, 212, 232, 252, 272, 292, 312, 332, 352, 372, 392, 412, 432, 452, 472,
     492, 512, 532, 552, 572, 592, 612, 632, 652, 672, 692, 712, 732, 752, 772, 792, 812, 832, 852, 872, 892, 912, 932,
     952, 972, 992, 1012, 1023],
]  # fmt: skip
GOLDEN = {
    3: {"targets": [[49, 56, 56], [45, 45, 45], [41, 41, 41], [47, 61, 61], [50, 532, 1023]],
        "cl_latent": 9.666234970092773, "cl_explicit": 9.27184772491455, "kl_out": 4.983260154724121,
        "kl_mid": 1.1389347314834595, "loss": 68.88458251953125},
    1: {"targets": [[49], [45], [41], [47], [50]],  # K = 1 takes the first segment
        "cl_latent": 2.81984543800354, "cl_explicit": 6.722379207611084, "kl_out": 2.295250177383423,
        "kl_mid": 0.21778801083564758, "loss": 32.516502380371094},
}  # fmt: skip
TERMS = ("cl_latent", "cl_explicit", "kl_out", "kl_mid", "loss")


@pytest.fixture(scope="module")
def encoder(qwen3_tokenizer) -> LaSEREncoder:
    model = tiny_causal_lm(len(qwen3_tokenizer), "qwen3", seed=0)
    return LaSEREncoder(model, qwen3_tokenizer, LaSERConfig.from_preset("laser-qwen3"))


def examples() -> list[TrainExample]:
    return [TrainExample(query=q, instruction=i, reasoning=r, positives=[p], negatives=[n]) for q, i, r, p, n in BATCH]


def run(encoder: LaSEREncoder, k: int, **options) -> tuple[DualViewCollator, dict, dict]:
    collate = DualViewCollator(encoder.formatter, encoder.pad, examples(), [], num_thinking_steps=k,
                               negatives_per_query=1, **options)  # fmt: skip
    batch = collate(list(range(len(BATCH))), epoch=0, device=encoder.device)
    model = DualViewModel(encoder.model, get_objective("laser"), LossWeights(), num_thinking_steps=k, group_size=2)
    with torch.no_grad():
        out = model(batch)
    return collate, batch, out


def targets(collate: DualViewCollator, batch: dict) -> list[list[int]]:
    width = batch["explicit_ids"].shape[1]
    pads = [width - len(collate.explicit[i].input_ids) for i in batch["explicit_rows"].tolist()]
    return [[p - pad for p in row] for row, pad in zip(batch["segment_positions"].tolist(), pads)]


@pytest.mark.parametrize("k", [3, 1])
def test_default_batch_and_losses_equal_the_official_code(encoder, k):
    collate, batch, out = run(encoder, k)
    assert separator_token_id(encoder.tokenizer) == 271
    assert batch["explicit_rows"].tolist() == [0, 1, 2, 3, 4]  # every query has a teacher
    assert [len(v.input_ids) for v in collate.explicit] == LENGTHS
    assert all(v.input_ids[-1] == encoder.tokenizer.eos_token_id for v in collate.explicit)
    assert [v.segment_ends for v in collate.explicit] == SEGMENTS
    assert targets(collate, batch) == GOLDEN[k]["targets"]
    # float32 to a relative 5e-6: the terms match the official values to 1.0e-6 relative with two torch threads and
    # to 1.2e-6 with one (as after `laser demo` on a loaded machine), which sums in another order; a change of rule
    # moves a term by 1e-3 or more (the test below).
    for term in TERMS:
        assert float(out[term]) == pytest.approx(GOLDEN[k][term], rel=5e-6, abs=1e-5), term


def test_the_projects_options_are_not_the_official_batch(encoder):
    """The golden values tell the rules apart: each of the project's options moves the targets or the loss."""
    collate, batch, out = run(encoder, 3, trajectory_targets="text_spans")
    assert targets(collate, batch) != GOLDEN[3]["targets"]
    collate, batch, out = run(encoder, 3, missing_reasoning="skip_explicit")
    assert batch["explicit_rows"].tolist() == [0, 1, 2, 4]  # "7x13" stays a rationale, the missing one is left out
    assert float(out["kl_out"]) != pytest.approx(GOLDEN[3]["kl_out"], abs=1e-3)
    collate, _, _ = run(encoder, 3, explicit_eos_in_budget=True)
    assert len(collate.explicit[4].input_ids) == 1024
    collate, batch, _ = run(encoder, 1, downsample="evenly")
    assert targets(collate, batch) == [[56], [45], [41], [61], [1023]]  # K = 1 takes the last segment
