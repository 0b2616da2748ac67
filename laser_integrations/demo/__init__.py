"""The offline end-to-end demo (``laser demo``): load (or train) a LaSER checkpoint, index, answer, compare.

Example:
    >>> from laser_integrations.demo import DemoOptions, run_demo
    >>> result = run_demo(DemoOptions(workdir="laser-demo"))  # doctest: +SKIP
    >>> {slot: side["ndcg@10"] for slot, side in result["models"].items()}  # doctest: +SKIP
"""

from .run import DEMO_DATA, DEMO_TRAINING, OFFLINE_BACKBONE, SHIPPED_CHECKPOINT, DemoOptions, prepare_backbone, run_demo

__all__ = [
    "DEMO_DATA",
    "DEMO_TRAINING",
    "OFFLINE_BACKBONE",
    "SHIPPED_CHECKPOINT",
    "DemoOptions",
    "prepare_backbone",
    "run_demo",
]
