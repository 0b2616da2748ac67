"""LaSER's dual-view self-distillation trainer (``laser-train``).

Library code: :mod:`.losses` (pure loss functions), :mod:`.objectives` (full method and ablations),
:mod:`.data` (layouts, validation, collator), :mod:`.model` (the two views), :mod:`.trainer` (the loop),
:mod:`.reason` (rationale writing), :mod:`.mine` (hard-negative mining), :mod:`.process_memory` (peak memory,
glibc's mmap threshold), :mod:`.cli` (``laser-train``).
"""

from .arguments import TrainConfig, build_config
from .data import DataError, TrainExample, load_training_data
from .objectives import OBJECTIVES, Objective, get_objective
from .trainer import LaSERTrainer

__all__ = [
    "OBJECTIVES",
    "DataError",
    "LaSERTrainer",
    "Objective",
    "TrainConfig",
    "TrainExample",
    "build_config",
    "get_objective",
    "load_training_data",
]
