from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from laser_integrations import LaSERConfig, LaSEREncoder
from laser_integrations.testing import SHARED_ENV, shared_dir, tiny_encoder


@pytest.fixture(scope="session")
def load_script():
    """Import a script that is not part of the package (``training/``, the demo data generator) from its path."""

    def load(path: Path):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def one_torch_thread():
    """Tiny models on shared cores: one intra-op thread is an order of magnitude faster than two. The caller's count
    comes back afterwards, so later tests run as they would alone (``pytestmark = usefixtures(...)`` in a module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (or $LASER_SHARED_DIR); tests that need it skip with the reason when it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip(f"shared assets folder not found (set {SHARED_ENV} or place it at ../shared)")
    return path


@pytest.fixture(scope="session")
def qwen3_tokenizer(shared: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared / "tokenizers" / "qwen3")


@pytest.fixture(scope="session")
def encoder() -> LaSEREncoder:
    """Tiny random Qwen3 with a BPE tokenizer trained in the test, released-checkpoint input format."""
    return tiny_encoder("qwen3")


@pytest.fixture(scope="session")
def symmetric_encoder_dir(tmp_path_factory) -> Path:
    """A saved tiny encoder whose query and document formats are identical, so a text finds itself."""
    config = LaSERConfig(query_template="{text}", document_template="{text}", query_instruction="")
    folder = tmp_path_factory.mktemp("models") / "tiny-symmetric"
    tiny_encoder("qwen3", config=config, seed=1).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory, encoder: LaSEREncoder) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-qwen3"
    encoder.save_pretrained(folder)
    return folder
