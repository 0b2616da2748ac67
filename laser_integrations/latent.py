"""LaSER's latent thinking: the one implementation used by inference, training and every integration.

Given a left-padded batch, the backbone reads the input once; ``h_1`` is the final-norm hidden state at the
last input token. For steps ``j = 2..K`` the LM head turns ``h_{j-1}`` into a next-token distribution ``p_j``,
the soft token ``t_j = p_j^T E`` (the expected input embedding) is appended as one new position, and ``h_j`` is
read there. The embedding is ``normalize(mean(h_1..h_K))``.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache, DynamicLayer


@dataclass
class LatentOutput:
    """``step_states``: (batch, K, hidden) hidden states h_1..h_K; ``embeddings``: their pooled mean."""

    step_states: torch.Tensor
    embeddings: torch.Tensor


def unwrap_causal_lm(model: nn.Module) -> nn.Module:
    """The transformers causal LM inside a peft wrapper (LoRA layers stay active), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def gradient_checkpointing_enabled(causal_lm: nn.Module) -> bool:
    flag = getattr(type(causal_lm), "is_activation_checkpointing", None)  # transformers >= 5.x name
    name = "is_activation_checkpointing" if flag is not None else "is_gradient_checkpointing"
    return bool(getattr(causal_lm, name, False))


def left_padded_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on each row's first real token, so a text's embedding ignores its padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def soft_token_embeddings(causal_lm: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``softmax(W_lm h) @ E``, scaled as the backbone scales real token embeddings.

    Args:
        causal_lm: the transformers causal LM (not a peft wrapper).
        hidden: (batch, hidden) final-norm hidden states.

    Returns:
        (batch, 1, hidden) input embeddings for the next position.
    """
    logits = causal_lm.get_output_embeddings()(hidden)
    # Gemma 2/3 soft-cap their logits; the soft token follows the model's actual next-token distribution.
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    probs = torch.softmax(logits.float(), dim=-1)
    if probs.device.type == "cpu":
        # A confident next-token distribution puts much of the vocabulary below the smallest normal float; x86
        # CPUs multiply such subnormals tens of times slower, which made p @ E most of K=3's cost on CPU. Zeroing
        # them moves the soft token by at most vocab_size * 1.2e-38 * max|E|.
        probs = probs.masked_fill(probs < torch.finfo(torch.float32).tiny, 0.0)
    embed = causal_lm.get_input_embeddings()
    soft = probs.to(embed.weight.dtype) @ embed.weight
    # Embedding modules that scale their output (Gemma 3's ScaledWordEmbedding) expect callers that pass
    # inputs_embeds to scale too; Gemma 1/2 scale inside the decoder, where inputs_embeds get it as well.
    scale = getattr(embed, "embed_scale", None)
    if scale is not None:
        soft = soft * torch.as_tensor(scale, dtype=soft.dtype, device=soft.device)
    return soft.unsqueeze(1)


class KVWorkspace:
    """Key/value memory that an inference caller keeps between latent runs (``LaSEREncoder`` does on CPU).

    Freshly allocated memory is mapped in page by page on first write; for a K=3 batch of Qwen3-0.6B's shape that
    is ~2 GB of KV cache a batch, and on the virtual machines measured here mapping it cost more than the latent
    steps themselves. Reusing the same buffers removes that cost; the memory stays allocated (as large as the
    largest batch's cache) until :meth:`clear`. One latent run uses a workspace at a time: a concurrent run
    that finds it busy allocates its own cache, as without a workspace.
    """

    def __init__(self) -> None:
        self._flat: list[torch.Tensor] = []  # per cache tensor (layer keys, layer values, ...), 1-D
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrowed(self) -> Iterator[KVWorkspace | None]:
        """This workspace while no other run holds it, else None (the caller then allocates its own cache)."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self
        finally:
            self._lock.release()

    def buffer(self, slot: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` backed by slot ``slot``'s memory (grown when too small)."""
        numel = int(torch.Size(shape).numel())
        while len(self._flat) <= slot:
            self._flat.append(like.new_empty(0))
        flat = self._flat[slot]
        if flat.numel() < numel or flat.dtype != like.dtype or flat.device != like.device:
            self._flat[slot] = flat = like.new_empty(numel)
        return flat[:numel].view(shape)

    def clear(self) -> None:
        """Free the buffers (the next run allocates again)."""
        with self._lock:
            self._flat = []

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._flat)


class _PreallocatedLayer(DynamicLayer):
    """A full-attention KV cache layer sized once for the prompt plus ``extra`` latent steps.

    ``DynamicLayer`` concatenates on every update, copying the whole cache (the prompt included) at the prefill
    and again at every latent step; this writes each position once, into a :class:`KVWorkspace`'s memory when
    given one. Inference only: later in-place writes would invalidate tensors autograd saved, so training keeps
    ``DynamicCache``.
    """

    def __init__(self, extra: int, workspace: KVWorkspace | None = None, slot: int = 0):
        super().__init__()
        self.extra = extra
        self.length = 0
        self.workspace, self.slot = workspace, slot

    def _allocate(self, states: torch.Tensor, slot: int) -> torch.Tensor:
        batch, heads, length, dim = states.shape
        shape = (batch, heads, length + self.extra, dim)
        return self.workspace.buffer(slot, shape, states) if self.workspace else states.new_empty(shape)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._keys = self._allocate(key_states, 2 * self.slot)
        self._values = self._allocate(value_states, 2 * self.slot + 1)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # more steps than sized for: fall back to growing
            self._keys = torch.cat([self._keys[..., : self.length, :], key_states], dim=-2)
            self._values = torch.cat([self._values[..., : self.length, :], value_states], dim=-2)
        else:
            self._keys[..., self.length : end, :] = key_states
            self._values[..., self.length : end, :] = value_states
        self.length = end
        self.keys, self.values = self._keys[..., :end, :], self._values[..., :end, :]
        return self.keys, self.values


def _thinking_cache(causal_lm: nn.Module, extra_steps: int, workspace: KVWorkspace | None = None) -> DynamicCache:
    """A KV cache for the prefill plus ``extra_steps`` latent steps.

    Preallocated (in ``workspace`` when given) when no gradient is recorded and every layer is plain full
    attention; otherwise (training, sliding-window or hybrid models) the model's own ``DynamicCache``, which
    handles those layer types.
    """
    cache = DynamicCache(config=causal_lm.config)
    layers = getattr(cache, "layers", None)
    if not torch.is_grad_enabled() and layers and all(type(layer) is DynamicLayer for layer in layers):
        cache.layers = [_PreallocatedLayer(extra_steps, workspace, slot) for slot in range(len(layers))]
    return cache


def _cache_keyword(decoder: nn.Module) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (the old name goes in 5.40)."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def latent_think(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    num_thinking_steps: int,
    *,
    normalize: bool = True,
    use_cache: bool | None = None,
    detach_soft_tokens: bool = False,
    workspace: KVWorkspace | None = None,
) -> LatentOutput:
    """Run K latent thinking steps over a left-padded batch.

    Args:
        model: a transformers causal LM, or a peft model wrapping one.
        input_ids: (batch, seq) token ids, left-padded.
        attention_mask: (batch, seq), 1 on real tokens.
        num_thinking_steps: K >= 1.
        normalize: L2-normalise the pooled embedding.
        use_cache: extend a KV cache by one position per step (default). ``False`` recomputes the whole
            sequence at each step instead: the same numbers, needed when gradient checkpointing is on
            during training because checkpointed layers drop the cache. ``None`` picks automatically.
        detach_soft_tokens: training only: soft tokens enter the next step as constants, so no gradient flows
            back through ``softmax(W_lm h) E``; the step states still get gradients through attention to the
            input. Same values either way.
        workspace: inference only: KV memory reused across calls (see :class:`KVWorkspace`); same values.

    Returns:
        The step states h_1..h_K and the pooled embeddings.
    """
    if num_thinking_steps < 1:
        msg = f"num_thinking_steps must be >= 1, got {num_thinking_steps}."
        raise ValueError(msg)
    if input_ids.shape[1] == 0:
        msg = "latent_think needs at least one input token per text."
        raise ValueError(msg)
    if not bool((attention_mask[:, -1] == 1).all()):
        msg = "latent_think expects left padding: every row's last position must be a real token."
        raise ValueError(msg)
    causal_lm = unwrap_causal_lm(model)
    decoder = causal_lm.get_decoder()
    if use_cache is None:
        use_cache = not (gradient_checkpointing_enabled(causal_lm) and causal_lm.training)

    position_ids = left_padded_position_ids(attention_mask)
    inputs_embeds = causal_lm.get_input_embeddings()(input_ids)
    use_cache = use_cache and num_thinking_steps > 1
    borrow = workspace.borrowed() if use_cache and workspace is not None else contextlib.nullcontext()
    with borrow as held:  # held: the workspace, or None when not needed or another run is using it
        cache = {}
        if use_cache:
            cache[_cache_keyword(decoder)] = _thinking_cache(causal_lm, num_thinking_steps - 1, held)
        out = decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **cache,
        )
        states = [out.last_hidden_state[:, -1]]
        for _ in range(num_thinking_steps - 1):
            soft = soft_token_embeddings(causal_lm, states[-1])
            if detach_soft_tokens:
                soft = soft.detach()
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
            next_position = position_ids[:, -1:] + 1
            position_ids = torch.cat([position_ids, next_position], dim=1)
            if use_cache:
                out = decoder(
                    inputs_embeds=soft,
                    attention_mask=attention_mask,
                    position_ids=next_position,
                    use_cache=True,
                    **cache,
                )
            else:
                inputs_embeds = torch.cat([inputs_embeds, soft], dim=1)
                out = decoder(
                    inputs_embeds=inputs_embeds,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    use_cache=False,
                )
            states.append(out.last_hidden_state[:, -1])
    step_states = torch.stack(states, dim=1)
    return LatentOutput(step_states=step_states, embeddings=pool_steps(step_states, normalize=normalize))


def pool_steps(step_states: torch.Tensor, num_steps: int | None = None, *, normalize: bool = True) -> torch.Tensor:
    """The embedding of K = ``num_steps`` from step states: the mean of the first ``num_steps`` (all by default).

    Step ``i`` never sees later steps (causal attention), so the first k states of a run with more steps are the
    states of a run with k steps: one run at the largest K gives every smaller K's embedding.
    """
    states = step_states if num_steps is None else step_states[:, :num_steps]
    embeddings = states.float().mean(dim=1)
    return F.normalize(embeddings, p=2, dim=-1) if normalize else embeddings
