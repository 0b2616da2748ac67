"""The offline end-to-end demo (``laser demo``): train or fetch a LaSER checkpoint, index, answer, compare.

Example:
    >>> from laser_integrations.demo import DemoOptions, run_demo
    >>> result = run_demo(DemoOptions(workdir="laser-demo"))  # doctest: +SKIP
    >>> result["models"]["laser"]["ndcg@10"], result["models"]["backbone"]["ndcg@10"]  # doctest: +SKIP
"""

from .run import DEMO_DATA, DEMO_TRAINING, DemoOptions, hub_reachable, prepare_backbone, run_demo

__all__ = ["DEMO_DATA", "DEMO_TRAINING", "DemoOptions", "hub_reachable", "prepare_backbone", "run_demo"]
