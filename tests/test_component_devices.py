"""Multi-device encoding through the components: Haystack `devices=`, LlamaIndex `parallel_process`/`target_devices`.

One pool of two CPU worker processes (spawning is the expensive part) serves every component here: they share one
encoder (same load parameters) and name the same devices, so `shared_pool` hands them the same workers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice

from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder, LaSERTextEmbedder
from laser_integrations.llama_index import LaSEREmbedding
from laser_integrations.parallel import close_shared_pools, shared_pool

DEVICES = ["cpu:0", "cpu:1"]
TEXTS = [
    "the prime numbers are divisible only by one and themselves",
    "entropy",
    "a prefix code satisfies the kraft inequality on codeword lengths of a prefix code and more words after it",
    "bayes theorem updates a prior",
    "the derivative of a product follows the product rule",
] * 3
CPU = ComponentDevice.from_str("cpu")


@pytest.fixture(scope="module", autouse=True)
def _stop_the_workers():
    yield
    close_shared_pools()


def test_haystack_embedders_with_devices_equal_one_process(encoder, encoder_dir):
    docs = [Document(content=t) for t in TEXTS]
    single = LaSERDocumentEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, batch_size=4)
    pooled = LaSERDocumentEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, batch_size=4,
                                   devices=DEVICES)  # fmt: skip
    expected = encoder.encode_documents(TEXTS)  # the encoder the checkpoint was saved from: an independent copy
    got = [d.embedding for d in pooled.run(docs)["documents"]]
    np.testing.assert_allclose(got, [d.embedding for d in single.run(docs)["documents"]], atol=1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # The workers are the shared pool of this component's encoder on these devices (started once, reused).
    pool = shared_pool(pooled.encoder, DEVICES)
    assert pool.devices == DEVICES and pool._processes and all(p.is_alive() for p in pool._processes)

    text = LaSERTextEmbedder(model=str(encoder_dir), device=CPU, progress_bar=False, devices="cpu:0,cpu:1")
    assert text.encoder is None and text.devices == DEVICES  # the comma form is parsed to the list form
    query = text.run(TEXTS[2])["embedding"]
    np.testing.assert_allclose(query, encoder.encode_queries([TEXTS[2]])[0], atol=1e-6)
    assert text.encoder is pooled.encoder  # one encoder, so one pool, for both components


def test_llama_index_parallel_process_equals_one_process(encoder, encoder_dir):
    pooled = LaSEREmbedding(str(encoder_dir), device="cpu", parallel_process=True, target_devices=DEVICES,
                            embed_batch_size=len(TEXTS), encode_batch_size=4)  # fmt: skip
    single = LaSEREmbedding(str(encoder_dir), device="cpu", encode_batch_size=4)
    started = shared_pool(pooled.encoder, DEVICES)  # the Haystack test's workers: components share one pool
    got = pooled.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(got, single.get_text_embedding_batch(TEXTS), atol=1e-6)
    np.testing.assert_allclose(got, encoder.encode_documents(TEXTS), atol=1e-6)
    np.testing.assert_allclose(pooled.get_query_embedding(TEXTS[0]), encoder.encode_queries([TEXTS[0]])[0], atol=1e-6)
    assert shared_pool(pooled.encoder, DEVICES) is started
    again = LaSEREmbedding.from_json(pooled.to_json())
    assert again.parallel_process and again.target_devices == DEVICES and again.to_dict() == pooled.to_dict()


def test_llama_index_without_a_device_loads_on_the_cpu_for_the_workers(encoder_dir, monkeypatch):
    # parallel_process without `device`: the parent's copy stays on the CPU (workers copy it to their devices).
    seen = {}
    import laser_integrations.llama_index as module

    def recording(model, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(module, "get_encoder", recording)
    with pytest.raises(RuntimeError, match="stop before loading"):
        LaSEREmbedding(str(encoder_dir), parallel_process=True, target_devices=DEVICES)
    assert seen["device"] == "cpu"


@pytest.mark.parametrize(
    ("devices", "match"),
    [
        (["gpu0"], r"Invalid device 'gpu0' in devices; use e.g. 'cuda:0', 'cuda:1', 'cpu:0', 'cpu:1'"),
        (["cuda"], r"Give CUDA devices with their index \('cuda:0,cuda:1'\), not 'cuda'"),
        ([], r"devices must name at least one device, e.g. 'cuda:0,cuda:1' or 'cpu:0,cpu:1'"),
    ],
)
def test_bad_devices_fail_naming_the_valid_forms(devices, match):
    for component in (LaSERDocumentEmbedder, LaSERTextEmbedder):
        with pytest.raises(ValueError, match=match):
            component(model="never/loaded", devices=devices)
    with pytest.raises(ValueError, match=match):
        LaSEREmbedding("never/loaded", parallel_process=True, target_devices=devices)


def test_parallel_process_without_devices_and_without_cuda_says_to_name_them(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"No CUDA device to default to; give the devices, e.g. .*'cpu:0', 'cpu:1'"):
        LaSEREmbedding("never/loaded", parallel_process=True)


def test_devices_round_trip_and_pool_stays_refused_in_encode_kwargs():
    embedder = LaSERDocumentEmbedder(model="never/loaded", devices="cpu:0, cpu:1")
    data = embedder.to_dict()
    assert data["init_parameters"]["devices"] == DEVICES
    again = LaSERDocumentEmbedder.from_dict(data)
    assert again.devices == DEVICES and again.to_dict() == data
    assert LaSERTextEmbedder(model="never/loaded").to_dict()["init_parameters"]["devices"] is None
    pipeline = Pipeline()
    pipeline.add_component("embedder", embedder)
    assert Pipeline.loads(pipeline.dumps()).get_component("embedder").devices == DEVICES
    with pytest.raises(ValueError, match=r"'pool' is set by the component's devices"):
        LaSERDocumentEmbedder(model="never/loaded", encode_kwargs={"pool": None})
