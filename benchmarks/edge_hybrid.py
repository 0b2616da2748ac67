"""Hybrid (dense + BM25, RRF) on Qdrant Edge vs qdrant-client local mode: 10^4 docs, dim 64, 200 queries.

Run: `PYTHONPATH=. python benchmarks/edge_hybrid.py` (writes /tmp/bench_edge and /tmp/bench_client). Queries whose
fused top-10 differ are explained by printing the 10th and 11th score of each search (a tie at the prefetch cutoff).
"""
import shutil, time
import numpy as np
from haystack import Document
from haystack.document_stores.types import DuplicatePolicy
from laser_integrations.qdrant import open_document_store
from laser_integrations.sparse import BM25SparseEncoder
from laser_integrations.hybrid import hybrid_request
from haystack_integrations.document_stores.qdrant.converters import convert_qdrant_point_to_haystack_document

N, D, Q = 10_000, 64, 200
rng = np.random.default_rng(0)
vocab = [f"w{i:04d}x" for i in range(2000)]
texts = [" ".join(rng.choice(vocab, 20)) for _ in range(N)]
dense = rng.normal(size=(N, D)).astype(np.float32); dense /= np.linalg.norm(dense, axis=1, keepdims=True)
enc = BM25SparseEncoder.fit(texts)
sparse = enc.encode_documents(texts)
docs = [Document(id=str(i), content=t, embedding=dense[i].tolist(), sparse_embedding=s.to_haystack()) for i, (t, s) in enumerate(zip(texts, sparse))]
qd = rng.normal(size=(Q, D)); qd /= np.linalg.norm(qd, axis=1, keepdims=True)
qs = enc.encode_queries([" ".join(rng.choice(vocab, 4)) for _ in range(Q)])
results = {}
for engine in ("edge", "client"):
    shutil.rmtree(f"/tmp/bench_{engine}", ignore_errors=True)
    store = open_document_store(path=f"/tmp/bench_{engine}", collection="b", embedding_dim=D, hybrid=True, engine=engine,
                                **({"progress_bar": False} if engine == "client" else {}))
    t = time.perf_counter(); store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE); write = time.perf_counter() - t
    hits = []
    t = time.perf_counter()
    for d, s in zip(qd, qs):
        if engine == "edge":
            got = store._query_hybrid(d.tolist(), s.to_haystack(), top_k=10, rrf_k=60, prefetch_limit=10)
        else:
            req = hybrid_request(d.tolist(), s, limit=10, prefetch_limit=10, rrf_k=60)
            store._initialize_client()
            got = [convert_qdrant_point_to_haystack_document(p, True) for p in store._client.query_batch_points("b", [req])[0].points]
        hits.append([(x.id, round(x.score, 6)) for x in got])
    query = (time.perf_counter() - t) / Q * 1000
    store.close()
    results[engine] = hits
    print(f"{engine}: write {N} docs {write:.1f} s; hybrid query {query:.2f} ms/query (top 10, prefetch 10, k 60)")
same_sets = sum({i for i, _ in a} == {i for i, _ in b} for a, b in zip(results["edge"], results["client"]))
same_scores = sum(sorted(a) == sorted(b) for a, b in zip(results["edge"], results["client"]))
print(f"queries with the same top-10 ids: {same_sets}/{Q}; same ids and scores: {same_scores}/{Q}")
same_score_lists = sum(
    np.allclose(sorted((s for _, s in a), reverse=True), sorted((s for _, s in b), reverse=True), rtol=1e-5, atol=0)
    for a, b in zip(results["edge"], results["client"])
)
print(f"queries whose top-10 fused score lists agree (rel 1e-5; ids differ only among tied scores): {same_score_lists}/{Q}")
from qdrant_client import QdrantClient
bad = [i for i, (a, b) in enumerate(zip(results["edge"], results["client"]))
       if not np.allclose(sorted((s for _, s in a), reverse=True), sorted((s for _, s in b), reverse=True), rtol=1e-5, atol=0)]
c = QdrantClient(path="/tmp/bench_client")
for i in bad:
    sp = c.query_points("b", query=qs[i].to_qdrant(), using="text-sparse", limit=11).points
    de = c.query_points("b", query=qd[i].tolist(), using="text-dense", limit=11).points
    print(i, "sparse 10th/11th", round(sp[9].score, 6), round(sp[10].score, 6), "dense 10th/11th", round(de[9].score, 6), round(de[10].score, 6))
c.close()
