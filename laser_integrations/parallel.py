"""Data-parallel LaSER encoding: one spawned worker process per device, each running the encoder's own loop.

An :class:`EncoderPool` (``LaSEREncoder.start_multi_process_pool``) starts one process per device: a CUDA device
(``"cuda:0"``, ``"cuda:1"``) or a CPU process with its own thread budget (``"cpu:0"``, ``"cpu:1"``). The texts
of a call are cut into contiguous chunks; idle workers take the next chunk, each embeds it with
:meth:`LaSEREncoder.encode_local` (length-sorted token-budget batching, the out-of-memory back-off, the one latent
loop), and the parent puts the rows back in input order. A text's embedding does not depend on what it is batched
with, so the result equals one process's to float rounding (the tests check 1e-6).

Workers are spawned, not forked (CUDA cannot be forked), so a script that starts a pool must guard its entry
point with ``if __name__ == "__main__":``. The model's weights reach CPU workers through shared memory (one copy
for all of them); CUDA workers copy them to their device.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import math
import os
import queue
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.multiprocessing as mp
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from .encoder import LaSEREncoder
    from .formatting import Kind

logger = logging.getLogger(__name__)

_POLL_S = 0.5  # how often a waiting side checks that the other is still alive


class WorkerDiedError(RuntimeError):
    """A worker process ended without finishing its work (killed, out of host memory, ...)."""


def parse_devices(devices: Sequence[str | torch.device] | str | None) -> list[str]:
    """Device strings for the workers: ``"cuda:0,cuda:1"``, ``["cpu:0", "cpu:1"]``...; None: every CUDA device.

    Raises:
        ValueError: an unknown device, a CUDA device that is not there, ``"cuda"`` without an index, or no
            devices (and no CUDA device to default to).
    """
    if devices is None:
        if not torch.cuda.is_available():
            msg = "No CUDA device to default to; give the devices, e.g. devices=['cpu:0', 'cpu:1'] for two CPU processes."
            raise ValueError(msg)
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    items = [d.strip() for d in devices.split(",")] if isinstance(devices, str) else [str(d) for d in devices]
    if not items or any(not d for d in items):
        msg = f"devices must name at least one device, e.g. 'cuda:0,cuda:1' or 'cpu:0,cpu:1'; got {devices!r}."
        raise ValueError(msg)
    parsed = []
    for item in items:
        try:
            device = torch.device(item)
        except (RuntimeError, TypeError) as e:
            msg = f"Invalid device {item!r} in devices; use e.g. 'cuda:0', 'cuda:1', 'cpu:0', 'cpu:1'."
            raise ValueError(msg) from e
        if device.type == "cuda":
            if device.index is None:
                msg = f"Give CUDA devices with their index ('cuda:0,cuda:1'), not {item!r}."
                raise ValueError(msg)
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if device.index >= count:
                msg = f"Device {item!r} is not available: this machine has {count} CUDA device(s)."
                raise ValueError(msg)
        elif device.type not in ("cpu", "mps"):
            msg = f"Invalid device {item!r} in devices; workers run on 'cuda:N', 'cpu:N' or 'mps'."
            raise ValueError(msg)
        parsed.append(f"{device.type}:{device.index or 0}" if device.type == "cpu" else str(device))
    return parsed


def cpu_devices(processes: int) -> list[str]:
    """``["cpu:0", ..., "cpu:{processes-1}"]``: CPU worker processes (the index is only a name)."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        msg = f"processes must be a positive integer, got {processes!r}."
        raise ValueError(msg)
    return [f"cpu:{i}" for i in range(processes)]


def threads_for(devices: Sequence[str], threads_per_process: int | None) -> int:
    """torch threads of each worker: the given budget, else the machine's cores shared out among the CPU workers."""
    if threads_per_process is not None:
        if isinstance(threads_per_process, bool) or not isinstance(threads_per_process, int) or threads_per_process < 1:
            msg = f"threads_per_process must be a positive integer or None, got {threads_per_process!r}."
            raise ValueError(msg)
        return threads_per_process
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cpu_workers = sum(1 for d in devices if d.startswith("cpu")) or len(devices)
    return max(1, cores // cpu_workers)


@contextlib.contextmanager
def picklable_model(model: torch.nn.Module):
    """Lift transformers' output-capturing forward hooks (local functions, which pickle cannot send to a spawned
    worker) off ``model`` while it is pickled; the worker's copy installs its own on first use."""
    lifted: list[tuple[Any, Any, Any]] = []
    flagged = [m for m in model.modules() if getattr(m, "_output_capturing_hooks_installed", False)]
    for module in model.modules():
        for key, hook in list(module._forward_hooks.items()):
            if "output_capturing_hook" in getattr(hook, "__qualname__", ""):
                lifted.append((module, key, hook))
                del module._forward_hooks[key]
    for module in flagged:
        module._output_capturing_hooks_installed = False
    try:
        yield model
    finally:
        for module, key, hook in lifted:
            module._forward_hooks[key] = hook
        for module in flagged:
            module._output_capturing_hooks_installed = True


def spawn_context() -> Any:
    """The multiprocessing context for workers: spawn (CUDA cannot be forked), with torch's tensor sharing."""
    return mp.get_context("spawn")


def setup_worker(device: str, threads: int, log_queue: Any | None = None) -> torch.device:
    """In a freshly spawned worker: its thread budget, its CUDA device, and warnings sent to the parent."""
    torch.set_num_threads(threads)
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if log_queue is not None:
        package = logging.getLogger("laser_integrations")
        package.addHandler(_TaggedQueueHandler(log_queue))
        package.setLevel(logging.INFO)
        package.propagate = False
    return target


class _TaggedQueueHandler(logging.handlers.QueueHandler):
    """Sends a worker's log records to the parent as ("log", record) on the results queue."""

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(("log", None, record))


def replay_log(record: logging.LogRecord) -> None:
    """Emit a worker's log record in the parent, through the parent's handlers for that logger."""
    target = logging.getLogger(record.name)
    if target.isEnabledFor(record.levelno):
        target.handle(record)


def parent_alive(parent_pid: int) -> bool:
    """False once the parent died (a SIGKILLed parent's workers are re-parented, so they stop instead of idling)."""
    return os.getppid() == parent_pid


def move_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return model if device.type == "cpu" else model.to(device)


def _encode_worker(rank: int, device: str, threads: int, payload: tuple, tasks: Any, results: Any, parent_pid: int) -> None:
    """A pool worker: build the encoder on ``device``, then embed chunks until told to stop."""
    try:
        from .encoder import LaSEREncoder

        target = setup_worker(device, threads, results)
        model, tokenizer, config = payload
        encoder = LaSEREncoder(move_model(model, target), tokenizer, config)
    except BaseException as e:  # the parent reports it; nothing else can
        results.put(("fatal", rank, _picklable(e)))
        return
    results.put(("ready", rank, None))
    while True:
        try:
            task = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if not parent_alive(parent_pid):
                return
            continue
        if task is None:
            return
        task_id, args = task
        try:
            results.put(("ok", task_id, encoder.encode_local(*args)))
        except BaseException as e:
            results.put(("error", task_id, _picklable(e)))


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a RuntimeError with its type and message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


class EncoderPool:
    """Worker processes that encode with one :class:`LaSEREncoder` on several devices; use it as ``pool=``.

    Example:
        >>> with encoder.start_multi_process_pool(["cpu:0", "cpu:1"], threads_per_process=1) as pool:  # doctest: +SKIP
        ...     embeddings = encoder.encode_documents(texts, pool=pool)

    Args:
        encoder: the encoder whose model, tokenizer and config the workers use.
        devices: see :func:`parse_devices`.
        threads_per_process: torch threads per worker (default: cores shared out among the CPU workers).
        chunk_size: at most this many texts handed to a worker at a time.

    Raises:
        ValueError: bad devices or thread budget.
        WorkerDiedError: a worker failed to start or died.
    """

    def __init__(
        self,
        encoder: LaSEREncoder,
        devices: Sequence[str | torch.device] | str | None = None,
        *,
        threads_per_process: int | None = None,
        chunk_size: int = 1024,
    ):
        self.encoder = encoder
        self.devices = parse_devices(devices)
        self.threads_per_process = threads_for(self.devices, threads_per_process)
        self.chunk_size = chunk_size
        self._lock = threading.Lock()  # one call at a time: results are matched to the call that asked
        self._closed = False
        ctx = spawn_context()
        self._tasks, self._results = ctx.Queue(), ctx.Queue()
        model = encoder.model
        if encoder.device.type == "cpu":
            model.share_memory()  # CPU workers map the parent's weights instead of copying them
        payload = (model, encoder.tokenizer, encoder.config)
        self._processes = []
        with picklable_model(model):  # spawn pickles the payload inside start()
            for rank, device in enumerate(self.devices):
                process = ctx.Process(
                    target=_encode_worker,
                    args=(rank, device, self.threads_per_process, payload, self._tasks, self._results, os.getpid()),
                    daemon=True,
                    name=f"laser-encode-{device}",
                )
                process.start()
                self._processes.append(process)
        atexit.register(_close_at_exit, weakref.ref(self))
        try:
            ready: set[int] = set()
            while len(ready) < len(self.devices):
                kind, rank, value = self._next_result()
                if kind == "fatal":
                    msg = f"The encoding worker on {self.devices[rank]} failed to start: {value}"
                    raise WorkerDiedError(msg) from value
                if kind == "ready":
                    ready.add(rank)
        except BaseException:
            self.close()
            raise
        logger.info("Encoding pool ready: %s, %d thread(s) each.", ", ".join(self.devices), self.threads_per_process)

    def __repr__(self) -> str:
        return f"EncoderPool(devices={self.devices}, threads_per_process={self.threads_per_process})"

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_result(self) -> tuple[str, Any, Any]:
        """The next message from a worker (log records are replayed here), or WorkerDiedError."""
        while True:
            try:
                kind, key, value = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                for device, process in zip(self.devices, self._processes, strict=True):
                    if not process.is_alive():
                        msg = (
                            f"The encoding worker on {device} died (exit code {process.exitcode}); the pool is closed. "
                            "Out of host memory? Start a new pool with fewer processes or smaller batches."
                        )
                        self.close()
                        raise WorkerDiedError(msg) from None
                continue
            if kind == "log":
                replay_log(value)
                continue
            return kind, key, value

    def encode_raw(
        self,
        texts: list[str],
        kind: Kind,
        instruction: str | None,
        batch_size: int,
        show_progress: bool,
        ks: list[int],
        normalize: bool,
        max_length: int | None,
        max_tokens_per_batch: int | None,
    ) -> tuple[np.ndarray, int]:
        """What :meth:`LaSEREncoder.encode_local` returns, computed by the workers; called by ``encode(pool=...)``."""
        if self._closed:
            msg = "This EncoderPool is closed; start a new one with encoder.start_multi_process_pool(...)."
            raise RuntimeError(msg)
        out = np.empty((len(texts), len(ks), self.encoder.dimension), dtype=np.float32)
        if not texts:
            return out, 0
        # Several chunks per worker so a slow one does not hold the rest; never below a full batch.
        size = min(self.chunk_size, max(batch_size, math.ceil(len(texts) / (4 * len(self.devices)))))
        starts = list(range(0, len(texts), size))
        truncated = 0
        with self._lock, tqdm(total=len(texts), desc="Embedding", disable=not show_progress) as bar:
            for task_id, start in enumerate(starts):
                args = (texts[start : start + size], kind, instruction, batch_size, False, ks, normalize, max_length,
                        max_tokens_per_batch)  # fmt: skip
                self._tasks.put((task_id, args))
            pending = set(range(len(starts)))
            while pending:
                status, task_id, value = self._next_result()
                if status == "error":
                    self._drain(pending - {task_id})
                    raise value
                if status != "ok" or task_id not in pending:
                    continue
                chunk, n_truncated = value
                start = starts[task_id]
                out[start : start + len(chunk)] = chunk
                truncated += n_truncated
                pending.discard(task_id)
                bar.update(len(chunk))
        return out, truncated

    def _drain(self, pending: set[int]) -> None:
        """After a failed chunk: wait out the call's other chunks so the next call starts clean."""
        while pending:
            _, task_id, _ = self._next_result()
            pending.discard(task_id)

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._processes:
            with contextlib.suppress(Exception):
                self._tasks.put(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def _close_at_exit(ref: weakref.ref) -> None:
    pool = ref()
    if pool is not None:
        pool.close()


_SHARED: dict[tuple[int, tuple[str, ...], int | None], EncoderPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(
    encoder: LaSEREncoder, devices: Sequence[str | torch.device] | str | None, *, threads_per_process: int | None = None
) -> EncoderPool:
    """The running pool of ``encoder`` on ``devices``, started on first use and shared by every caller.

    For framework components that take a ``devices`` parameter: components sharing one encoder (see
    ``laser_integrations.backend.get_encoder``) and naming the same devices share one set of workers, which stop
    when the program exits (or on :func:`close_shared_pools`).
    """
    key = (id(encoder), tuple(parse_devices(devices)), threads_per_process)
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool._closed or pool.encoder is not encoder:
            pool = _SHARED[key] = EncoderPool(encoder, devices, threads_per_process=threads_per_process)
    return pool


def close_shared_pools() -> None:
    """Stop every pool :func:`shared_pool` started."""
    with _SHARED_LOCK:
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.close()
