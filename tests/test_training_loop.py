"""The trainer on tiny random models: gradients, learning, exact resume, export, config/data errors, the CLI."""

from __future__ import annotations

import json
import math
import resource
from pathlib import Path

import pytest
import torch
import yaml

from laser_integrations import LaSERConfig, LaSEREncoder
from laser_integrations.formatting import Formatter
from laser_integrations.testing import tiny_encoder
from laser_integrations.training import DataError, LaSERTrainer, build_config
from laser_integrations.training.arguments import load_yaml
from laser_integrations.training.cli import main
from laser_integrations.training.trainer import clip_per_term, read_metrics

DOCS = [
    "the prime numbers are divisible only by one",
    "a prefix code satisfies the kraft inequality",
    "entropy measures the average information",
    "the derivative of a product follows the product rule",
    "special relativity dilates time for a moving clock",
    "bayes theorem updates a prior with a likelihood",
    "the integral of a derivative recovers the function",
    "question answer theorem proof lemma corollary",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("training") / "tiny"
    tiny_encoder(
        "qwen3", config=LaSERConfig.from_preset("plain", query_max_length=48, document_max_length=48)
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = []
    for i in range(16):
        doc = DOCS[i % 8]
        row = {
            "query": f"which idea: {' '.join(doc.split()[1:3])}",
            "positives": [doc],
            "negatives": [DOCS[(i + 3) % 8]],
        }
        if i % 2 == 0:
            row["reasoning"] = f"it is about {doc.split()[1]}\n\nso the answer mentions {doc.split()[-1]}\n\ndone"
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def config(tiny_dir: Path, data: Path, out: Path, **overrides):
    values = {
        "model": str(tiny_dir), "train_data": str(data), "output_dir": str(out), "per_device_batch_size": 4,
        "lora_r": 8, "lora_alpha": 16, "learning_rate": 1e-3, "max_steps": 4, "save_steps": 0, "progress_bar": False,
        "explicit_max_length": 128, "seed": 3,
        "missing_reasoning": "skip_explicit",  # half the toy queries have no rationale; several tests rely on it
    }  # fmt: skip
    values.update(overrides)
    return build_config(values)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_reach_exactly_the_trainable_parameters(tiny_dir, toy_data, tmp_path, checkpointing):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", gradient_checkpointing=checkpointing))
    trainer.setup()
    with torch.no_grad():  # LoRA starts with B = 0, which zeroes A's gradient; move off that point
        for name, p in trainer.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    batch = trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu"))
    out = trainer.dual(batch)
    assert set(out) >= {"loss", "cl_latent", "cl_explicit", "kl_out", "kl_mid"}
    assert all(float(out[t].detach()) > 0 for t in ("cl_latent", "cl_explicit", "kl_out", "kl_mid"))
    out["loss"].backward()
    named = list(trainer.backbone.named_parameters())
    trainable = [n for n, p in named if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for name, p in named:
        if p.requires_grad:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
        else:
            assert p.grad is None, name


def test_full_fine_tuning_trains_every_parameter(tiny_dir, toy_data, tmp_path):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", lora=False))
    trainer.setup()
    trainer.dual(trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu")))["loss"].backward()
    params = list(trainer.backbone.named_parameters())
    assert all(p.requires_grad and p.grad is not None for _, p in params)
    assert float(trainer.backbone.get_output_embeddings().weight.grad.abs().sum()) > 0  # soft tokens reach W_lm


def test_detach_soft_tokens_keeps_the_loss_and_cuts_the_soft_token_gradient(tiny_dir, toy_data, tmp_path):
    losses, lm_head_grads = [], []
    for detach in (False, True):
        trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / f"out{detach}", lora=False, lora_dropout=0.0,
                                      objective="no_explicit_view", detach_soft_tokens=detach))  # fmt: skip
        trainer.setup()
        out = trainer.dual(trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu")))
        out["loss"].backward()
        losses.append(float(out["loss"].detach()))
        grad = trainer.backbone.get_output_embeddings().weight.grad  # the untied LM head only makes soft tokens
        lm_head_grads.append(0.0 if grad is None else float(grad.abs().sum()))
        assert float(trainer.backbone.get_input_embeddings().weight.grad.abs().sum()) > 0
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # the same forward pass
    assert lm_head_grads[0] > 0 and lm_head_grads[1] == 0.0


def test_frozen_teacher_gives_no_gradient_through_the_explicit_view(tiny_dir, toy_data, tmp_path):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", objective="frozen_teacher"))
    trainer.setup()
    batch = trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu"))
    out = trainer.dual(batch)
    assert "cl_explicit" not in out and float(out["kl_out"].detach()) > 0
    # The teacher's states are computed without a graph: only the latent view carries gradients.
    last, trajectory = trainer.dual._teacher_states(batch["explicit_ids"], batch["explicit_mask"],
                                                    batch["segment_positions"])
    assert not last.requires_grad and not trajectory.requires_grad


def test_loss_goes_down_on_a_toy_set(tiny_dir, toy_data, tmp_path):
    out = tmp_path / "out"
    LaSERTrainer(config(tiny_dir, toy_data, out, max_steps=32, lambda_out=1.0, warmup_ratio=0.0)).train()
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl")]
    assert len(losses) == 32
    assert sum(losses[-6:]) / 6 < 0.6 * sum(losses[:6]) / 6
    assert (out / "loss_curve.png").stat().st_size > 0


def _terms(trainer: LaSERTrainer, batch: dict, scale: float = 1.0) -> dict[str, float]:
    with torch.no_grad():
        return {k: float(v) for k, v in trainer.dual(batch, distill_scale=scale).items() if k != "weighted"}


@pytest.mark.parametrize("weighting", ["rationale_mean", "batch_share"])
def test_loss_weights_follow_schedule_and_rationale_share(tiny_dir, toy_data, tmp_path, weighting):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", explicit_weighting=weighting,
                                  lambda_explicit=2.0, lambda_out=3.0, lambda_mid=0.5, lora_dropout=0.0))  # fmt: skip
    trainer.setup()
    batch = trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu"))  # rows 0 and 2 have a rationale
    share = 0.5 if weighting == "batch_share" else 1.0
    for scale in (1.0, 0.25, 0.0):
        t = _terms(trainer, batch, scale)
        expected = t["cl_latent"] + share * (2.0 * t["cl_explicit"] + scale * (3.0 * t["kl_out"] + 0.5 * t["kl_mid"]))
        assert t["loss"] == pytest.approx(expected, rel=1e-5)
        assert t["explicit_fraction"] == 0.5


def test_in_prompt_layout_feeds_question_and_rationale_through_the_query_template(tiny_dir, toy_data, tmp_path):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", explicit_layout="in_prompt", lora_dropout=0.0))
    trainer.setup()
    batch = trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu"))
    examples, formatter = trainer.collator.examples, trainer.collator.formatter
    untruncated = Formatter(formatter.tokenizer, formatter.config.replace(query_max_length=128))
    for row, index in enumerate(batch["explicit_rows"].tolist()):
        ex = examples[index]
        ids = batch["explicit_ids"][row][batch["explicit_mask"][row].bool()].tolist()
        assert ids == untruncated.tokenize([ex.query + "\n\n" + ex.reasoning], "query")[0][0]
    terms = _terms(trainer, batch)
    assert all(math.isfinite(terms[t]) and terms[t] > 0 for t in ("cl_explicit", "kl_out", "kl_mid"))


def test_query_without_rationale_contributes_nothing_to_distillation(tiny_dir, toy_data, tmp_path):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", explicit_weighting="batch_share",
                                  lora_dropout=0.0))  # fmt: skip
    trainer.setup()
    batch = trainer.collator([0, 1, 2, 3], epoch=0, device=torch.device("cpu"))
    assert batch["explicit_rows"].tolist() == [0, 2]
    before = _terms(trainer, batch)
    changed = dict(batch, query_ids=batch["query_ids"].clone())
    changed["query_ids"][1, -3:] = torch.tensor([5, 6, 7])  # row 1 has no rationale: only L_cl^L sees it
    after = _terms(trainer, changed)
    assert after["cl_latent"] != pytest.approx(before["cl_latent"], rel=1e-6)
    for term in ("cl_explicit", "kl_out", "kl_mid"):
        assert after[term] == pytest.approx(before[term], rel=1e-6)


def test_contrastive_warm_up_is_logged_and_keeps_distillation_off(tiny_dir, toy_data, tmp_path):
    out = tmp_path / "out"
    resident_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    LaSERTrainer(config(tiny_dir, toy_data, out, max_steps=5, distill_warmup_steps=2, distill_ramp_steps=2,
                        lora_dropout=0.0)).train()  # fmt: skip
    records = read_metrics(out / "metrics.jsonl")
    # each step logs the process's peak resident memory so far: never falling, and what getrusage reads
    peaks = [r["peak_rss_mb"] for r in records]
    assert peaks == sorted(peaks) and peaks[0] >= resident_before - 1
    assert peaks[-1] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1
    assert [r["distill_scale"] for r in records] == [0.0, 0.0, 0.5, 1.0, 1.0]
    for r in records:  # each view's in-batch top-1 accuracy is logged; null where a step had no rationale
        assert 0.0 <= r["acc_latent"] <= 1.0
        assert r["acc_explicit"] is None or 0.0 <= r["acc_explicit"] <= 1.0
    for r in records:
        weights = 1.0 * r["cl_explicit"] + r["distill_scale"] * (10.0 * r["kl_out"] + 0.1 * r["kl_mid"])
        assert r["loss"] == pytest.approx(r["cl_latent"] + weights, rel=1e-4)


def _clip_each_and_add(grads: dict[str, list[torch.Tensor]], max_norm: float) -> list[torch.Tensor]:
    """torch's own clip_grad_norm_ on each term's gradient alone, then the sum: the reference for per-term clipping."""
    total = None
    for grad in grads.values():
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grad]
        for p, g in zip(params, grad):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        total = [p.grad for p in params] if total is None else [t + p.grad for t, p in zip(total, params)]
    return total


def test_clip_per_term_clips_each_term_as_clip_grad_norm_does():
    gen = torch.Generator().manual_seed(0)
    grads = {
        "cl_latent": [torch.randn(4, 3, generator=gen) * 0.1, torch.randn(5, generator=gen) * 0.1],  # norm < 1: kept
        "kl_out": [torch.randn(4, 3, generator=gen) * 20, torch.randn(5, generator=gen) * 20],  # norm >> 1: clipped
    }
    summed, norms, total = clip_per_term(grads, 1.0)
    for got, want in zip(summed, _clip_each_and_add(grads, 1.0)):
        torch.testing.assert_close(got, want)
    for term, grad in grads.items():
        assert norms[term] == pytest.approx(float(torch.cat([g.flatten() for g in grad]).norm()), rel=1e-6)
    raw = torch.cat([(a + b).flatten() for a, b in zip(*grads.values())])
    assert total == pytest.approx(float(raw.norm()), rel=1e-6)
    # The small term keeps its full size: clipping the sum would have shrunk it by the large term's factor.
    kept = torch.cat([s.flatten() for s in summed]).norm()
    assert 1.0 < float(kept) <= 1.0 + norms["cl_latent"] + 1e-5


def test_split_per_term_clipping_shares_the_limit_and_keeps_the_sum_within_it():
    gen = torch.Generator().manual_seed(1)
    grads = {term: [torch.randn(4, 3, generator=gen) * 20, torch.randn(5, generator=gen) * 20]
             for term in ("cl_latent", "cl_explicit", "kl_out")}  # fmt: skip
    summed, norms, _ = clip_per_term(grads, 1.0, split=True)
    for got, want in zip(summed, _clip_each_and_add(grads, 1.0 / 3)):
        torch.testing.assert_close(got, want)
    assert float(torch.cat([s.flatten() for s in summed]).norm()) <= 1.0 + 1e-5
    # Without split the same terms add up to a step up to three times larger.
    unsplit, _, _ = clip_per_term(grads, 1.0)
    assert float(torch.cat([s.flatten() for s in unsplit]).norm()) > 1.0
    # A small term keeps its full size under either limit.
    small = {"cl_latent": [g * 1e-3 for g in grads["cl_latent"]], "kl_out": grads["kl_out"]}
    summed, _, _ = clip_per_term(small, 1.0, split=True)
    torch.testing.assert_close(summed[0], small["cl_latent"][0] + _clip_each_and_add({"k": small["kl_out"]}, 0.5)[0])


@pytest.mark.parametrize("split", [False, True], ids=["each_to_limit", "limit_split"])
def test_per_term_clipping_steps_on_the_sum_of_each_terms_clipped_gradient(tiny_dir, toy_data, tmp_path, split):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", clip_grad_per_term=True, max_grad_norm=0.05,
                                  clip_grad_per_term_split=split, lora_dropout=0.0, distill_warmup_steps=0,
                                  distill_ramp_steps=0, max_steps=1))  # fmt: skip
    trainer.setup()
    with torch.no_grad():  # off LoRA's B = 0 start, so every term has a gradient on A and B
        for name, p in trainer.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    trainable = [p for p in trainer.dual.parameters() if p.requires_grad]
    indices, epoch = trainer._indices(0, 0)
    out = trainer.dual(trainer.collator(indices, epoch, torch.device("cpu")), distill_scale=1.0)
    weighted = out["weighted"]
    assert set(weighted) == {"cl_latent", "cl_explicit", "kl_out", "kl_mid"}
    assert float(sum(weighted.values()).detach()) == pytest.approx(float(out["loss"].detach()), rel=1e-6)
    grads = {t: list(torch.autograd.grad(v, trainable, retain_graph=True)) for t, v in weighted.items()}
    expected = _clip_each_and_add(grads, 0.05 / len(grads) if split else 0.05)
    # The sum clipped once (total clipping); a Parameter built from a tensor has no .grad, so clip through the helper.
    clipped_total = _clip_each_and_add({"sum": [sum(g) for g in zip(*grads.values())]}, 0.05)

    seen = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (seen.append([p.grad.clone() for p in trainable]), step(*a, **k))[1]
    trainer.train()
    for got, want in zip(seen[0], expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    differs = any(not torch.allclose(g, c, rtol=1e-3, atol=1e-8) for g, c in zip(seen[0], clipped_total))
    assert differs, "clipping each term gave the same step as clipping their sum: the test would not tell them apart"
    record = read_metrics(tmp_path / "out" / "metrics.jsonl")[0]
    for term, grad in grads.items():
        assert record[f"grad_norm_{term}"] == pytest.approx(float(torch.cat([g.flatten() for g in grad]).norm()),
                                                            rel=1e-4)  # fmt: skip


def test_per_term_clipping_with_one_term_equals_clipping_the_total(tiny_dir, toy_data, tmp_path):
    common = {"objective": "contrastive", "max_steps": 3, "max_grad_norm": 0.01, "lora_dropout": 0.0}
    total = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "total", **common))
    total.train()
    per_term = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "per_term", clip_grad_per_term=True, **common))
    per_term.train()
    a, b = total.trainable_state(), per_term.trainable_state()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-7)
    records = read_metrics(tmp_path / "per_term" / "metrics.jsonl")
    assert all(r["grad_norm"] > 0.01 for r in records)  # clipping acted on every step
    assert [r["grad_norm"] for r in records] == pytest.approx([r["grad_norm_cl_latent"] for r in records])


def test_killed_and_resumed_training_equals_uninterrupted(tiny_dir, toy_data, tmp_path):
    common = {"max_steps": 6, "save_steps": 2, "gradient_accumulation_steps": 2, "per_device_batch_size": 2,
              "lora_dropout": 0.1}  # fmt: skip
    straight = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "a", **common))
    straight.train()
    expected = straight.trainable_state()

    killed = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "b", **common))
    assert killed.train(stop_after_steps=3) is None  # step 3 is lost: the last checkpoint is step 2
    assert not (tmp_path / "b" / "final").exists()
    with pytest.raises(FileExistsError, match="--resume_from_checkpoint latest"):
        LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "b", **common)).setup()
    resumed = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "b", resume_from_checkpoint="latest", **common))
    resumed.train()
    got = resumed.trainable_state()
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    a, b = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], abs=1e-5)


@pytest.mark.parametrize("export", ["merged", "adapter"])
def test_export_loads_with_from_pretrained(tiny_dir, toy_data, tmp_path, export):
    trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "out", export=export, objective="contrastive",
                                  max_steps=2))  # fmt: skip
    final = trainer.train()
    files = {p.name for p in final.iterdir()}
    assert "laser_config.json" in files and not any(f.endswith(".bin") for f in files)
    assert ("adapter_config.json" in files) == (export == "adapter")
    loaded = LaSEREncoder.from_pretrained(final, device="cpu")
    assert loaded.config.num_thinking_steps == 1  # contrastive trains and exports last-token pooling
    live = LaSEREncoder(trainer.backbone, trainer.tokenizer, trainer.laser_config)
    texts = ["which idea: prime numbers"]
    torch.testing.assert_close(
        torch.from_numpy(loaded.encode_queries(texts)), torch.from_numpy(live.encode_queries(texts)), atol=1e-5, rtol=0
    )


def test_bad_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"Unknown config keys \['lr'\].*Valid keys are"):
        build_config({"lr": 1, "model": "m", "train_data": "d", "output_dir": "o"})
    with pytest.raises(ValueError, match="max_steps must be a int, got 'many'"):
        build_config({"max_steps": "many", "model": "m", "train_data": "d", "output_dir": "o"})
    with pytest.raises(ValueError, match=r"export: invalid value 'gguf'. Valid values are: \['merged', 'adapter'\]"):
        build_config({"export": "gguf", "model": "m", "train_data": "d", "output_dir": "o"})
    with pytest.raises(ValueError, match=r"Missing required config keys \['train_data'\]"):
        build_config({"model": "m", "output_dir": "o"})
    with pytest.raises(ValueError, match="export: adapter needs lora: true"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "lora": False, "export": "adapter"})
    with pytest.raises(ValueError, match=r"explicit_weighting: invalid value 'share'. Valid values are"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "explicit_weighting": "share"})
    with pytest.raises(ValueError, match=r"explicit_layout: invalid value 'eos'. Valid values are"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "explicit_layout": "eos"})
    with pytest.raises(ValueError, match="distill_warmup_steps must be >= 0, got -5"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "distill_warmup_steps": -5})
    with pytest.raises(ValueError, match=r"clip_grad_per_term needs max_grad_norm > 0"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "clip_grad_per_term": True,
                      "max_grad_norm": 0})  # fmt: skip
    with pytest.raises(ValueError, match=r"set clip_grad_per_term: true as well, or drop clip_grad_per_term_split"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "clip_grad_per_term_split": True})
    with pytest.raises(ValueError, match=r"laser_config has unknown keys \['suffix'\]"):
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "laser_config": {"suffix": ""}})
    assert (
        build_config({"model": "m", "train_data": "d", "output_dir": "o", "learning_rate": "2e-5"}).train.learning_rate
        == 2e-5
    )


def test_a_laser_config_option_merges_into_the_yaml_mapping_and_a_scalar_option_replaces(tmp_path):
    from laser_integrations.training.arguments import config_from_args
    from laser_integrations.training.cli import build_parser

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: m\ntrain_data: d\nlearning_rate: 5.0e-4\n"
        "laser_config: {chat_suffix: '', query_max_length: 128, document_max_length: 128}\n",
        encoding="utf-8",
    )

    def parsed(*options: str):
        argv = ["train", "--config", str(recipe), "--output_dir", str(tmp_path / "out"), *options]
        args, extra = build_parser(argv).parse_known_args(argv)
        assert not extra
        return config_from_args(args)

    config = parsed("--laser_config", '{"document_max_length": 512}', "--learning_rate", "1e-4")
    # One key changed; the recipe's chat_suffix and query length stay (they used to be dropped, silently).
    assert config.model.laser_config == {"chat_suffix": "", "query_max_length": 128, "document_max_length": 512}
    assert config.train.learning_rate == 1e-4
    assert parsed().model.laser_config == {"chat_suffix": "", "query_max_length": 128, "document_max_length": 128}
    with pytest.raises(ValueError, match=r"command line: laser_config must be a dict, got 512\."):
        parsed("--laser_config", "512")
    with pytest.raises(ValueError, match=r"laser_config has unknown keys \['doc_len'\]"):
        parsed("--laser_config", "{doc_len: 512}")
    # Without a YAML file the option is the whole mapping.
    argv = ["train", "--model", "m", "--train_data", "d", "--output_dir", str(tmp_path / "o"),
            "--laser_config", "{document_max_length: 256}"]  # fmt: skip
    assert config_from_args(build_parser(argv).parse_args(argv)).model.laser_config == {"document_max_length": 256}


def test_bm25_hard_negatives_fill_only_queries_without_negatives(tiny_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"query": "the product rule for a derivative", "positives": [DOCS[3]]},  # shares "derivative" with DOCS[6]
            {"query": "prime numbers", "positives": [DOCS[0]], "negatives": [DOCS[5]]}]  # brings its own
    rows += [{"query": "integral", "positives": [DOCS[6]], "reasoning": "r"},
             {"query": "q1", "positives": [DOCS[1]], "reasoning": "r"}]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    trainer = LaSERTrainer(config(tiny_dir, data, tmp_path / "out", hard_negatives="bm25", mined_negatives=3))
    trainer.setup()
    # The pool is the records' documents. Stopwords aside, only DOCS[6] shares a term ("derivative") with the first
    # query besides its positive, so BM25 offers no other; the last two share a term with their positive only.
    assert trainer.examples[0].negatives == [DOCS[6]]
    assert trainer.examples[1].negatives == [DOCS[5]]
    assert trainer.examples[2].negatives == [] and trainer.examples[3].negatives == []
    with pytest.raises(ValueError, match="hard_negatives=bm25 needs negatives_per_query >= 1, got 0"):
        config(tiny_dir, data, tmp_path / "out", hard_negatives="bm25", negatives_per_query=0)


def test_bad_data_stops_before_anything_is_written(tiny_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positives": ["a"]}\n{"query": "q2"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl line 2: missing field .positives."):
        LaSERTrainer(config(tiny_dir, bad, tmp_path / "out")).train()
    assert not (tmp_path / "out").exists()


def test_objective_needing_rationales_without_any(tiny_dir, tmp_path):
    data = tmp_path / "plain.jsonl"
    data.write_text("".join(json.dumps({"query": f"q{i}", "positives": [DOCS[i]]}) + "\n" for i in range(8)))
    with pytest.raises(DataError, match="no training query has one.*laser-train reason"):
        LaSERTrainer(config(tiny_dir, data, tmp_path / "out")).train()
    assert not (tmp_path / "out").exists()


def test_cli_end_to_end(tiny_dir, toy_data, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(tiny_dir), "train_data": str(toy_data), "per_device_batch_size": 4,
                                      "lora_r": 4, "explicit_max_length": 128, "progress_bar": False}))  # fmt: skip
    out = tmp_path / "run"
    assert main(["--config", str(recipe), "--output_dir", str(out), "--max_steps", "2", "--save_steps", "1"]) == 0
    assert LaSEREncoder.from_pretrained(out / "final").config.num_thinking_steps == 3
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]
    assert yaml.safe_load((out / "train_config.yaml").read_text())["lora_r"] == 4
    assert main(["--config", str(recipe), "--output_dir", str(out), "--bogus", "1"]) == 2
    assert "Unknown config keys ['bogus']" in capsys.readouterr().err  # the key only, not its value
    assert main(["--config", str(recipe), "--output_dir", str(tmp_path / "x"), "--objective", "full"]) == 2
    assert "Valid objectives are" in capsys.readouterr().err


def test_trainers_with_different_precision_in_one_process(tiny_dir, toy_data, tmp_path):
    """accelerate's process-wide state must not make a second run with another bf16 setting fail."""
    first = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "a", bf16="true", max_steps=1))
    first.setup()
    assert first.accelerator.mixed_precision == "bf16"
    second = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "b", bf16="false", max_steps=1))
    second.train()
    assert second.accelerator.mixed_precision == "no"
    assert (tmp_path / "b" / "final" / "laser_config.json").is_file()


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "training").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid_configs(recipe):
    config = build_config(load_yaml(recipe), str(recipe))
    assert config.train.output_dir and config.data.train_data


def _saved_bytes_and_grads(trainer: LaSERTrainer, indices: list[int]) -> tuple[dict[str, float], int, dict]:
    """Loss terms, the bytes autograd keeps from the forward pass, and the gradients, for one batch."""
    batch = trainer.collator(indices, epoch=0, device=torch.device("cpu"))
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = trainer.dual(batch)
    out["loss"].backward()
    terms = {t: float(out[t].detach()) for t in ("loss", "cl_latent", "cl_explicit", "kl_out", "kl_mid")}
    grads = {n: p.grad.clone() for n, p in trainer.backbone.named_parameters() if p.requires_grad}
    return terms, saved, grads


def test_activation_checkpointing_by_view_gives_the_same_loss_and_gradients_and_keeps_less(
    tiny_dir, toy_data, tmp_path
):
    runs = {}
    # 40 tokens: one or two rows a chunk, so every view runs in several chunks; 10^6: one chunk, the same arithmetic
    for tokens in (0, 40, 10**6):
        trainer = LaSERTrainer(config(tiny_dir, toy_data, tmp_path / f"out{tokens}", lora_dropout=0.0,
                                      activation_checkpoint_tokens=tokens, missing_reasoning="use_query"))  # fmt: skip
        trainer.setup()
        torch.manual_seed(0)
        with torch.no_grad():  # LoRA starts with B = 0; move off that point so every gradient is non-zero
            for name, p in trainer.backbone.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.02)
        runs[tokens] = _saved_bytes_and_grads(trainer, [0, 1, 2, 3, 4, 5])
    (terms, saved, grads), (terms_ck, saved_ck, grads_ck) = runs[0], runs[40]
    assert terms_ck == pytest.approx(terms, rel=1e-5, abs=1e-6)
    assert grads_ck.keys() == grads.keys()
    for name, g in grads.items():  # chunks multiply smaller matrices: float32 rounding, not another gradient
        assert float((grads_ck[name] - g).abs().max()) <= 1e-4 * float(g.abs().max()), name
    assert saved_ck < saved / 20  # the chunks' activations were not kept for backward
    terms_one, saved_one, grads_one = runs[10**6]
    assert terms_one == terms and saved_one < saved / 20
    assert all(torch.equal(grads_one[name], g) for name, g in grads.items())


def test_activation_checkpointing_refuses_a_second_checkpointing_and_negative_budgets(tiny_dir, toy_data, tmp_path):
    with pytest.raises(ValueError, match="set one: activation_checkpoint_tokens keeps the latent steps' KV cache"):
        config(tiny_dir, toy_data, tmp_path / "a", activation_checkpoint_tokens=256, gradient_checkpointing=True)
    with pytest.raises(ValueError, match=r"activation_checkpoint_tokens must be >= 0 \(0 = off\), got -1"):
        config(tiny_dir, toy_data, tmp_path / "b", activation_checkpoint_tokens=-1)


# glibc's malloc statistics and allocator, called from a fresh interpreter: a fixed threshold lasts for the process.
_MMAP_PROBE = """
import ctypes, json
from laser_integrations.training.process_memory import glibc, malloc_heap_mb, set_malloc_mmap_threshold
libc = glibc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def mapped_after(threshold):
    set_malloc_mmap_threshold(threshold)
    before = malloc_heap_mb()["mapped"]
    block = libc.malloc(4 << 20)
    held = malloc_heap_mb()["mapped"] - before
    libc.free(block)
    return held, malloc_heap_mb()["mapped"] - before
print(json.dumps({"8MiB": mapped_after(8 << 20), "1MiB": mapped_after(1 << 20)}))
"""


def test_malloc_mmap_threshold_maps_large_blocks_alone_and_returns_them_when_freed():
    from laser_integrations.training.process_memory import malloc_heap_mb

    if malloc_heap_mb() is None:  # the option itself refuses there (the next test)
        pytest.skip("M_MMAP_THRESHOLD and mallinfo2 are glibc's (2.33+); this platform's C library is another")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MMAP_PROBE], capture_output=True, text=True, check=True)
    mapped = json.loads(done.stdout)
    assert mapped["8MiB"] == [0, 0]  # a 4 MiB block under the threshold comes from the heap
    held, after_free = mapped["1MiB"]
    assert held >= 4 and after_free == 0  # MiB; over it: its own mapping, gone once freed


def test_malloc_mmap_threshold_is_set_by_setup_and_refused_where_it_cannot_be_honoured(
    tiny_dir, toy_data, tmp_path, monkeypatch
):
    from laser_integrations.training import process_memory, trainer

    calls = []
    monkeypatch.setattr(trainer, "set_malloc_mmap_threshold", calls.append)  # the pytest process keeps glibc's own
    LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "a", malloc_mmap_threshold=1 << 20)).setup()
    LaSERTrainer(config(tiny_dir, toy_data, tmp_path / "b")).setup()
    assert calls == [1 << 20]  # 0, the default, leaves the allocator alone
    for bad in (-1, (32 << 20) + 1):
        with pytest.raises(ValueError, match=rf"malloc_mmap_threshold must be 0 \(glibc's adaptive default\) or "
                                             rf"1..33554432 bytes \(glibc's largest\), got {bad}"):  # fmt: skip
            config(tiny_dir, toy_data, tmp_path / "c", malloc_mmap_threshold=bad)
    monkeypatch.setattr(process_memory, "glibc", lambda: None)
    with pytest.raises(ValueError, match="is not glibc; set malloc_mmap_threshold: 0"):
        process_memory.set_malloc_mmap_threshold(1 << 20)
