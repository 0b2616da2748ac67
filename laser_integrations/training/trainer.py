"""The training loop: accelerate (multi-GPU/-node), LoRA, accumulation, AdamW + warmup, exact resume, export.

Output folder::

    output_dir/
      checkpoints/step-000050/   trainable weights (safetensors), optimizer, scheduler, RNG, trainer_state.json
      metrics.jsonl              one line per logged step: lr, loss, every loss term, each view's in-batch
                                 top-1 accuracy (acc_latent, acc_explicit: null when no rationale), and the
                                 process's peak resident memory so far (peak_rss_mb)
      loss_curve.png             the loss terms against the step
      train_config.yaml          the resolved configuration
      final/                     the export: LaSEREncoder.from_pretrained(output_dir / "final")

Checkpoints and the export are written to a temporary sibling and renamed, so a killed run never leaves a
half-written one. The data order is a function of (seed, epoch) and the position is the optimizer step, so
a resumed run replays exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..config import LaSERConfig
from ..encoder import LaSEREncoder
from ..loading import load_model_and_tokenizer, replace_folder, save_model_and_tokenizer
from ..offline import resolve_model_path
from .arguments import TrainConfig
from .data import DataError, DualViewCollator, load_training_data
from .losses import distillation_scale
from .model import DualViewModel, LossWeights
from .objectives import get_objective
from .process_memory import peak_resident_mb, set_malloc_mmap_threshold

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
DIAGNOSTICS = ("acc_latent", "acc_explicit")  # in-batch top-1 accuracy of each view, logged, not trained
FINAL = "final"
STATE = "trainer_state.json"


def gather_with_grad(accelerator: Any) -> Callable[[torch.Tensor], tuple[torch.Tensor, int]]:
    """Gather a tensor from every process for in-batch negatives, keeping the gradient of the local rows.

    ``all_gather`` returns tensors without autograd history; putting the local tensor back into its slot
    lets gradients flow to this process's documents (each process then back-propagates its own shard).
    """

    def gather(t: torch.Tensor) -> tuple[torch.Tensor, int]:
        if accelerator.num_processes == 1:
            return t, 0
        gathered = accelerator.gather(t.detach().contiguous())
        chunks = list(gathered.split(t.shape[0]))
        chunks[accelerator.process_index] = t
        return torch.cat(chunks), accelerator.process_index * t.shape[0]

    return gather


def _atomic_dir(target: Path, write: Callable[[Path], None]) -> None:
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def list_checkpoints(output_dir: Path) -> list[Path]:
    folder = output_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    done = [p for p in folder.glob("step-*") if (p / STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


class LaSERTrainer:
    """Trains a LaSER checkpoint with dual-view self-distillation (or one of its ablations).

    Example:
        >>> from laser_integrations.training import LaSERTrainer, build_config
        >>> config = build_config({"model": "smollm2-135m-offline", "train_data": "../shared/data/theoremqa",
        ...                        "output_dir": "runs/demo"})  # doctest: +SKIP
        >>> LaSERTrainer(config).train()  # doctest: +SKIP
        PosixPath('runs/demo/final')

    Args:
        config: validated configuration (:func:`~laser_integrations.training.arguments.build_config`).
        accelerator: an ``accelerate.Accelerator``; one is made from the config when None.
    """

    def __init__(self, config: TrainConfig, accelerator: Any = None):
        self.config = config
        self.objective = get_objective(config.loss.objective)
        self.output_dir = Path(config.train.output_dir)
        self.k = self.objective.num_thinking_steps or config.model.num_thinking_steps
        self._accelerator = accelerator

    # -- setup -------------------------------------------------------------------------------------------------
    def _mine_bm25_negatives(self) -> None:
        """``hard_negatives: bm25``: give each query without negatives the documents BM25 ranks highest in the pool
        (the same ranking as ``laser-train mine --model bm25``); queries that brought negatives keep theirs."""
        from ..evaluation.baselines import BM25Baseline
        from .mine import mine_negatives

        d = self.config.data
        lacking = [ex for ex in self.examples if not ex.negatives]
        if not lacking:
            return
        mined = mine_negatives(BM25Baseline(), lacking, self.pool, num_negatives=d.mined_negatives)
        for ex, negatives in zip(lacking, mined):
            ex.negatives = negatives
        logger.info("hard_negatives=bm25: %d of %d queries got %.1f mined negatives on average (%d got none: no "
                    "document shares a term with them; theirs are drawn from the pool).", len(lacking),
                    len(self.examples), sum(map(len, mined)) / len(mined), sum(not m for m in mined))  # fmt: skip

    def _check_output_dir(self) -> Path | None:
        """The checkpoint to resume from, or None; errors before anything is loaded or written."""
        t = self.config.train
        existing = list_checkpoints(self.output_dir)
        if t.resume_from_checkpoint:
            if t.resume_from_checkpoint == "latest":
                if not existing:
                    logger.warning("resume_from_checkpoint=latest but %s has no checkpoint; starting fresh.",
                                   self.output_dir)  # fmt: skip
                    return None
                return existing[-1]
            path = Path(t.resume_from_checkpoint)
            if not (path / STATE).is_file():
                msg = f"resume_from_checkpoint {str(path)!r} is not a checkpoint folder (no {STATE})."
                raise FileNotFoundError(msg)
            return path
        if existing and not t.overwrite_output_dir:
            msg = (
                f"output_dir {str(self.output_dir)!r} already holds checkpoints (latest {existing[-1].name}). "
                "Pass --resume_from_checkpoint latest to continue, or --overwrite_output_dir true to start over."
            )
            raise FileExistsError(msg)
        return None

    def _make_accelerator(self) -> Any:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, DistributedType

        choice = self.config.train.bf16
        use_bf16 = torch.cuda.is_available() if choice == "auto" else choice == "true"
        mixed_precision = "bf16" if use_bf16 else "no"
        # accelerate keeps one process-wide state and refuses a second precision in the same process, so a
        # notebook (or the demo, then a recipe) that trains twice would fail; a single process may start over.
        state = AcceleratorState._shared_state
        if (
            state.get("_mixed_precision", mixed_precision) != mixed_precision
            and state.get("distributed_type") == DistributedType.NO
        ):
            AcceleratorState._reset_state()
        return Accelerator(mixed_precision=mixed_precision)

    def _load_backbone(self, device: torch.device) -> tuple[nn.Module, Any, LaSERConfig]:
        m = self.config.model
        # Offline aliases and their recipe's input format are resolved by the loader.
        model, tokenizer, laser_config = load_model_and_tokenizer(m.model, device=device, dtype=m.dtype,
                                                                  allow_pickle=m.allow_pickle)  # fmt: skip
        laser_config = laser_config.replace(**{**m.laser_config, "num_thinking_steps": self.k})
        model.config.use_cache = False
        return model, tokenizer, laser_config

    def _wrap_lora(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        m = self.config.model
        targets: Any = m.lora_target_modules
        if targets != "all-linear":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        lora = LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout, target_modules=targets,
                          task_type="CAUSAL_LM")  # fmt: skip
        peft_model = get_peft_model(model, lora)
        peft_model.peft_config["default"].base_model_name_or_path = str(_absolute(resolve_model_path(m.model)))
        return peft_model

    def setup(self) -> None:
        """Validate data and config, load the model, build optimizer and scheduler (nothing is trained)."""
        from accelerate.utils import set_seed
        from transformers import get_linear_schedule_with_warmup

        cfg, t, d = self.config, self.config.train, self.config.data
        self.resume_from = self._check_output_dir()
        if t.malloc_mmap_threshold:  # before the data and the model take their memory
            set_malloc_mmap_threshold(t.malloc_mmap_threshold)
        # Data first: a bad record stops the run before the (slow) model load.
        self.examples, self.pool = load_training_data(
            d.train_data, d.data_format, corpus=d.corpus, split=d.split, missing_reasoning=d.missing_reasoning,
            max_examples=d.max_examples,
        )  # fmt: skip
        if d.hard_negatives == "bm25":
            self._mine_bm25_negatives()
        self.accelerator = self._accelerator or self._make_accelerator()
        acc = self.accelerator
        if t.clip_grad_per_term and acc.num_processes > 1:
            msg = (
                f"clip_grad_per_term backpropagates each loss term on its own, which {acc.num_processes} processes "
                "(DistributedDataParallel) cannot do; train on one process or set clip_grad_per_term: false."
            )
            raise ValueError(msg)
        set_seed(t.seed)
        model, self.tokenizer, self.laser_config = self._load_backbone(acc.device)
        if d.explicit_max_length <= self.laser_config.query_max_length + 1 and self.objective.explicit_view:
            msg = (
                f"explicit_max_length={d.explicit_max_length} must exceed query_max_length="
                f"{self.laser_config.query_max_length} + 1, so the rationale fits after the query."
            )
            raise ValueError(msg)
        teacher = None
        if self.objective.frozen_teacher and (cfg.model.teacher_model or not cfg.model.lora):
            if cfg.model.teacher_model:
                teacher = load_model_and_tokenizer(cfg.model.teacher_model, device=acc.device, dtype=cfg.model.dtype,
                                                   allow_pickle=cfg.model.allow_pickle)[0]  # fmt: skip
            else:
                teacher = copy.deepcopy(model)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.model.lora:
            model = self._wrap_lora(model)
        model.train()
        encoder = LaSEREncoder(model, self.tokenizer, self.laser_config)  # formatting and padding, as at inference
        model.train()
        self.collator = DualViewCollator(
            encoder.formatter, encoder.pad, self.examples, self.pool, num_thinking_steps=self.k,
            negatives_per_query=d.negatives_per_query, explicit_view=self.objective.explicit_view,
            separator=d.reasoning_separator, explicit_max_length=d.explicit_max_length, downsample=cfg.loss.downsample,
            explicit_layout=d.explicit_layout, seed=t.seed, default_instruction=d.instruction,
            missing_reasoning=d.missing_reasoning, trajectory_targets=d.trajectory_targets,
            explicit_eos_in_budget=d.explicit_eos_in_budget,
        )  # fmt: skip
        if self.objective.explicit_view and self.collator.num_explicit == 0:
            msg = (
                f"objective {self.objective.name!r} needs rationales, but no training query has one. Write them with "
                "`laser-train reason`, or use objective no_explicit_view or contrastive."
            )
            raise DataError(msg)
        self.micro_global = t.per_device_batch_size * acc.num_processes
        micro_per_epoch = len(self.examples) // self.micro_global
        self.steps_per_epoch = micro_per_epoch // t.gradient_accumulation_steps
        if self.steps_per_epoch == 0:
            msg = (
                f"{len(self.examples)} training examples are fewer than one optimizer step uses (per_device_batch_size "
                f"{t.per_device_batch_size} x {acc.num_processes} processes x gradient_accumulation_steps "
                f"{t.gradient_accumulation_steps}); lower them or add data."
            )
            raise DataError(msg)
        self.total_steps = t.max_steps if t.max_steps > 0 else math.ceil(t.num_epochs * self.steps_per_epoch)
        weights = LossWeights(
            temperature=cfg.loss.temperature, temperature_kd=cfg.loss.temperature_kd,
            temperature_mid=cfg.loss.temperature_mid, lambda_explicit=cfg.loss.lambda_explicit,
            lambda_out=cfg.loss.lambda_out, lambda_mid=cfg.loss.lambda_mid,
            normalize_trajectory=cfg.loss.normalize_trajectory, explicit_weighting=cfg.loss.explicit_weighting,
            detach_soft_tokens=cfg.loss.detach_soft_tokens,
        )  # fmt: skip
        dual = DualViewModel(model, self.objective, weights, self.k, 1 + d.negatives_per_query,
                             gather=gather_with_grad(acc), teacher=teacher,
                             checkpoint_tokens=cfg.model.activation_checkpoint_tokens)  # fmt: skip
        params = [p for p in dual.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, round(t.warmup_ratio * self.total_steps),
                                                    self.total_steps)  # fmt: skip
        # The scheduler stays unwrapped: accelerate's wrapper steps it once per process, but total_steps already
        # counts global optimizer steps.
        self.dual, self.optimizer = acc.prepare(dual, optimizer)
        self.scheduler = scheduler
        self.step = 0
        if self.resume_from is not None:
            self._load_checkpoint(self.resume_from)

    @property
    def backbone(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.dual).model

    # -- checkpoints -------------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().contiguous() for n, p in self.backbone.named_parameters() if p.requires_grad}

    def _save_checkpoint(self) -> None:
        from safetensors.torch import save_file

        acc = self.accelerator
        target = self.output_dir / CHECKPOINTS / f"step-{self.step:06d}"
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state(acc.device)
        all_rng = [None] * acc.num_processes
        if acc.num_processes > 1:
            torch.distributed.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        if acc.is_main_process:

            def write(tmp: Path) -> None:
                save_file(self.trainable_state(), str(tmp / "trainable.safetensors"))
                torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
                torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
                for rank, state in enumerate(all_rng):
                    tensors = {"torch": state["torch"]}
                    if "cuda" in state:
                        tensors["cuda"] = state["cuda"]
                    save_file(tensors, str(tmp / f"rng_{rank}.safetensors"))
                    (tmp / f"rng_{rank}.json").write_text(json.dumps(state["python"]), encoding="utf-8")
                state = {"step": self.step, "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                         "num_processes": acc.num_processes, "config": self.config.to_dict()}  # fmt: skip
                (tmp / STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")

            _atomic_dir(target, write)
            for old in list_checkpoints(self.output_dir)[: -self.config.train.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def _load_checkpoint(self, path: Path) -> None:
        from safetensors.torch import load_file

        acc = self.accelerator
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
        if state["num_processes"] != acc.num_processes or state["steps_per_epoch"] != self.steps_per_epoch:
            msg = (
                f"Checkpoint {path} was written by {state['num_processes']} processes with {state['steps_per_epoch']} "
                f"steps per epoch; this run has {acc.num_processes} and {self.steps_per_epoch}. Resume with the same "
                "data, batch size, accumulation and number of processes."
            )
            raise ValueError(msg)
        weights = load_file(str(path / "trainable.safetensors"))
        params = dict(self.backbone.named_parameters())
        missing = sorted(set(weights) ^ {n for n, p in params.items() if p.requires_grad})
        if missing:
            msg = f"Checkpoint {path} does not match this model's trainable parameters (e.g. {missing[:3]})."
            raise ValueError(msg)
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=acc.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rank = acc.process_index
        rng = load_file(str(path / f"rng_{rank}.safetensors"))
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"], acc.device)
        py_state = json.loads((path / f"rng_{rank}.json").read_text(encoding="utf-8"))
        random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
        self.step = state["step"]
        if acc.is_main_process:
            _truncate_metrics(self.output_dir / METRICS, self.step)
        logger.info("Resumed from %s at step %d.", path, self.step)

    # -- the loop ----------------------------------------------------------------------------------------------
    def _indices(self, step: int, micro: int) -> tuple[list[int], int]:
        """This process's example indices for micro-batch ``micro`` of optimizer step ``step``, and the epoch."""
        t = self.config.train
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        order = torch.randperm(len(self.examples), generator=torch.Generator().manual_seed(t.seed + epoch)).tolist()
        start = (in_epoch * t.gradient_accumulation_steps + micro) * self.micro_global
        start += self.accelerator.process_index * t.per_device_batch_size
        return order[start : start + t.per_device_batch_size], epoch

    def train(self, stop_after_steps: int | None = None) -> Path | None:
        """Train to ``total_steps`` and export to ``output_dir/final``.

        Args:
            stop_after_steps: stop (as if killed) after this many optimizer steps of this call, without the final
                export; a later ``resume_from_checkpoint`` run continues from the last checkpoint.

        Returns:
            The export folder, or None when stopped early.
        """
        from tqdm.auto import tqdm

        if not hasattr(self, "dual"):
            self.setup()
        acc, t = self.accelerator, self.config.train
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if self.resume_from is None and self.step == 0:
                # A fresh start (overwrite_output_dir): no metrics or checkpoints of an earlier run survive.
                (self.output_dir / METRICS).unlink(missing_ok=True)
                shutil.rmtree(self.output_dir / CHECKPOINTS, ignore_errors=True)
            (self.output_dir / "train_config.yaml").write_text(
                yaml.safe_dump(self.config.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
        terms = [*self.accelerator.unwrap_model(self.dual).active_terms()]
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"LaSER {self.objective.name}", unit="step",
                   disable=not (t.progress_bar and acc.is_main_process), dynamic_ncols=True)  # fmt: skip
        self.dual.train()
        trainable = [p for p in self.dual.parameters() if p.requires_grad]
        done_here, started = 0, time.perf_counter()
        while self.step < self.total_steps:
            if stop_after_steps is not None and done_here >= stop_after_steps:
                bar.close()
                return None
            sums: dict[str, float] = {}
            seen: dict[str, list[float]] = {}
            term_grads: dict[str, list[torch.Tensor]] = {}  # clip_grad_per_term: each term's gradient, accumulated
            scale = distillation_scale(self.step, self.config.loss.distill_warmup_steps,
                                       self.config.loss.distill_ramp_steps)  # fmt: skip
            for micro in range(t.gradient_accumulation_steps):
                indices, epoch = self._indices(self.step, micro)
                batch = self.collator(indices, epoch, acc.device)
                last = micro == t.gradient_accumulation_steps - 1
                with contextlib.nullcontext() if last else acc.no_sync(self.dual):
                    out = self.dual(batch, distill_scale=scale)
                    if t.clip_grad_per_term:
                        self._backward_per_term(out["weighted"], trainable, term_grads)
                    else:
                        acc.backward(out["loss"] / t.gradient_accumulation_steps)
                for name in ["loss", *terms, "explicit_fraction"]:
                    sums[name] = sums.get(name, 0.0) + float(out[name].detach()) / t.gradient_accumulation_steps
                for name in DIAGNOSTICS:
                    if name in out and not math.isnan(value := float(out[name])):
                        seen.setdefault(name, []).append(value)
            for name in DIAGNOSTICS:  # mean over the micro-batches that had one; NaN (logged as null) if none did
                if name in out:
                    sums[name] = statistics.fmean(seen[name]) if name in seen else math.nan
            grad_norm, term_norms = None, {}
            if t.clip_grad_per_term:
                summed, term_norms, grad_norm = clip_per_term(term_grads, t.max_grad_norm,
                                                              split=t.clip_grad_per_term_split)
                for param, grad in zip(trainable, summed):
                    param.grad = grad
            elif t.max_grad_norm > 0:
                grad_norm = float(acc.clip_grad_norm_(self.dual.parameters(), t.max_grad_norm))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            done_here += 1
            logged = self._reduce(sums)
            bar.update(1)
            bar.set_postfix({_short(k): f"{v:.3g}" for k, v in logged.items() if k != "explicit_fraction" and v == v})
            if self.step % t.logging_steps == 0 or self.step == self.total_steps:
                record = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                          "lr": self.scheduler.get_last_lr()[0], **{k: None if v != v else v for k, v in logged.items()},
                          "distill_scale": scale, "grad_norm": grad_norm,
                          **{f"grad_norm_{k}": v for k, v in term_norms.items()},
                          "seconds": round(time.perf_counter() - started, 2),
                          "peak_rss_mb": peak_resident_mb()}  # fmt: skip
                if acc.is_main_process:
                    with (self.output_dir / METRICS).open("a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
            if t.save_steps and self.step % t.save_steps == 0 and self.step < self.total_steps:
                self._save_checkpoint()
        bar.close()
        return self.export()

    def _backward_per_term(
        self, weighted: dict[str, torch.Tensor], params: list[torch.Tensor], grads: dict[str, list[torch.Tensor]]
    ) -> None:
        """Backpropagate each weighted term on its own and add its gradient to ``grads[term]``."""
        names = [name for name, value in weighted.items() if value.requires_grad]
        steps = self.config.train.gradient_accumulation_steps
        for i, name in enumerate(names):
            self.accelerator.backward(weighted[name] / steps, retain_graph=i < len(names) - 1)
            buffers = grads.setdefault(name, [torch.zeros_like(p) for p in params])
            for buffer, p in zip(buffers, params):
                if p.grad is not None:
                    buffer.add_(p.grad)
                    p.grad = None

    def _reduce(self, sums: dict[str, float]) -> dict[str, float]:
        """Average the logged values over processes."""
        if self.accelerator.num_processes == 1:
            return sums
        keys = sorted(sums)
        values = torch.tensor([sums[k] for k in keys], device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(keys, values.tolist()))

    def export(self) -> Path:
        """Write ``output_dir/final`` (merged safetensors or the adapter, tokenizer, laser_config.json)."""
        acc = self.accelerator
        target = self.output_dir / FINAL
        acc.wait_for_everyone()
        if acc.is_main_process:
            model = self.backbone
            if self.config.train.export == "merged" and hasattr(model, "merge_and_unload"):
                # Merge into a copy: the live model keeps its adapter (a caller may inspect or continue it).
                model = copy.deepcopy(model).merge_and_unload()
            save_model_and_tokenizer(model, self.tokenizer, self.laser_config, target)
            plot_metrics(self.output_dir / METRICS, self.output_dir / "loss_curve.png")
        acc.wait_for_everyone()
        return target


def clip_per_term(
    grads: dict[str, list[torch.Tensor]], max_norm: float, *, split: bool = False
) -> tuple[list[torch.Tensor], dict[str, float], float]:
    """Clip each term's gradient to ``max_norm`` on its own (as ``clip_grad_norm_`` would), then add them.

    Clipping the sum lets the term with the largest gradient set the step size of every term; per term, a spiking
    distillation term cannot shrink the contrastive gradient. Each clipped term can reach ``max_norm``, so the sum
    can be up to ``len(grads)`` times larger than total clipping allows; ``split`` gives each term
    ``max_norm / len(grads)`` instead, which keeps the sum within ``max_norm``. A term whose gradient stays below
    its share still takes it, so the step can come out smaller than total clipping's.

    Args:
        grads: term -> its gradient, one tensor per parameter (same order for every term).
        max_norm: the largest L2 norm each term's gradient keeps (their sum's, with ``split``).
        split: share ``max_norm`` equally among the terms present.

    Returns:
        The summed clipped gradient (one tensor per parameter), each term's norm before clipping, and the norm of
        the unclipped sum (what clipping the total would have seen).
    """
    summed: list[torch.Tensor] | None = None
    raw: list[torch.Tensor] | None = None
    norms = {}
    limit = max_norm / len(grads) if split and grads else max_norm
    for term, grad in grads.items():
        norm = _total_norm(grad)
        norms[term] = norm
        coef = min(1.0, limit / (norm + 1e-6))
        summed = [g * coef for g in grad] if summed is None else [s + g * coef for s, g in zip(summed, grad)]
        raw = [g.clone() for g in grad] if raw is None else [r + g for r, g in zip(raw, grad)]
    if summed is None or raw is None:
        msg = "clip_per_term got no term gradients: at least the latent contrastive term must backpropagate."
        raise ValueError(msg)
    return summed, norms, _total_norm(raw)


def _total_norm(tensors: list[torch.Tensor]) -> float:
    """L2 norm of all the tensors together (``torch.nn.utils.get_total_norm`` needs torch >= 2.6; we support 2.4)."""
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))


def _short(name: str) -> str:
    return {"cl_latent": "cl_L", "cl_explicit": "cl_E", "acc_latent": "acc_L", "acc_explicit": "acc_E"}.get(name, name)


def _absolute(path: str) -> str | Path:
    p = Path(path)
    return p.resolve() if p.exists() else path


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after ``step`` (they will be logged again by the resumed run)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    tmp.replace(path)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_metrics(metrics_path: Path, png_path: Path) -> Path | None:
    """The loss and each loss term against the step, one panel each (matplotlib, Agg backend)."""
    records = read_metrics(metrics_path)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in ("loss", "cl_latent", "cl_explicit", "kl_out", "kl_mid") if k in records[0]]
    accuracies = [k for k in DIAGNOSTICS if k in records[0]]
    panels = len(names) + bool(accuracies)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3), squeeze=False)
    steps = [r["step"] for r in records]
    for ax, name in zip(axes[0], names):
        ax.plot(steps, [r[name] for r in records], lw=1)
        ax.set_title(name)
    if accuracies:  # steps without a rationale have no explicit accuracy: plotted as gaps
        ax = axes[0][-1]
        for name in accuracies:
            ax.plot(steps, [math.nan if r[name] is None else r[name] for r in records], ".-", lw=0.8, ms=3,
                    label=name.removeprefix("acc_"))  # fmt: skip
        ax.set_title("in-batch top-1 accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(f".{png_path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path
