"""The training process's memory: its peak resident size, and where glibc puts large allocations.

On a CPU, every activation tensor is an allocation of the C library's ``malloc``. glibc maps a block of at least
``M_MMAP_THRESHOLD`` bytes on its own and unmaps it when freed; smaller blocks come from its heap arenas, whose
freed space stays with the process. The threshold starts at 128 KiB and glibc raises it each time a mapped block is
freed (up to 32 MiB), so after the first steps most activations come from the arenas: on the CPU recipe with a
rationale for every question, 3 of the 6.5 GiB resident at the peak were freed heap (``training/RESULTS.md``).
Fixing the threshold (``malloc_mmap_threshold``) stops that adaptation, and freed activations go back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

GLIBC_MAX_MMAP_THRESHOLD = 32 * 2**20  # HEAP_MAX_SIZE / 2 on 64-bit glibc; mallopt refuses more
_M_MMAP_THRESHOLD = -3  # <malloc.h>


def _proc_status_mb(field: str) -> float | None:
    """A memory line of Linux's ``/proc/self/status`` (``VmHWM``, ``VmRSS``) in MiB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None


def resident_mb() -> float | None:
    """This process's resident memory now in MiB (Linux's VmRSS); None off Linux."""
    return _proc_status_mb("VmRSS")


def peak_resident_mb() -> float | None:
    """This process's peak resident memory so far in MiB: Linux's VmHWM, else ``getrusage``'s ru_maxrss; None
    where neither exists (Windows). Logged every step, so a run's record shows at which step memory peaked."""
    peak_mb = _proc_status_mb("VmHWM")
    if peak_mb is not None:
        return peak_mb
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (which has ``mallopt``'s M_MMAP_THRESHOLD), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and macOS have no such symbol
        return None
    if hasattr(libc, "mallinfo2"):  # glibc 2.33+
        libc.mallinfo2.restype = _MallInfo2
    return libc


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def malloc_heap_mb() -> dict[str, float] | None:
    """glibc's own account of this process's ``malloc`` memory in MiB (``mallinfo2``, glibc 2.33+): ``heap`` (the
    arenas' size), ``heap_in_use``, ``heap_free`` (freed but kept by the process) and ``mapped`` (blocks mapped on
    their own); None off glibc. It walks every free list, so it is for diagnostics, not a hot loop."""
    libc = glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    info = libc.mallinfo2()
    return {"heap": info.arena / 2**20, "heap_in_use": info.uordblks / 2**20, "heap_free": info.fordblks / 2**20,
            "mapped": info.hblkhd / 2**20}  # fmt: skip


def set_malloc_mmap_threshold(nbytes: int) -> None:
    """Fix glibc's M_MMAP_THRESHOLD at ``nbytes`` for the rest of this process (all threads, later allocations).

    Blocks of at least ``nbytes`` are then mapped on their own and returned to the system when freed, whatever was
    freed before; the price is a page fault for each page of every such block. Raises ``ValueError`` where it
    cannot be honoured (not glibc, or a size glibc refuses).
    """
    if not 0 < nbytes <= GLIBC_MAX_MMAP_THRESHOLD:
        msg = f"malloc_mmap_threshold must be 1..{GLIBC_MAX_MMAP_THRESHOLD} bytes (glibc's largest), got {nbytes}."
        raise ValueError(msg)
    libc = glibc()
    if libc is None:
        msg = (
            f"malloc_mmap_threshold sets glibc's M_MMAP_THRESHOLD, and this platform's C library ({sys.platform}) is "
            "not glibc; set malloc_mmap_threshold: 0."
        )
        raise ValueError(msg)
    if libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(nbytes)) != 1:
        msg = f"glibc's mallopt refused M_MMAP_THRESHOLD = {nbytes}; set malloc_mmap_threshold: 0 or a smaller size."
        raise ValueError(msg)
    logger.info("glibc M_MMAP_THRESHOLD fixed at %d bytes: freed blocks of that size or more go back to the system",
                nbytes)  # fmt: skip
