"""The peers of bench/ann_bench.sh: FAISS and hnswlib on the same base, queries and threads as
kiln. Each index is built once (timed), then every setting searches all queries as one batch
--rounds times, the fastest pass giving queries/s; recall@k against the exact neighbours in
--truth (the ids kiln's exact search wrote, checked by the bench against FAISS's own flat search).
Prints one JSON object: {"versions": {...}, "results": [{"system", "index", "build_s",
"setting", "value", "qps", "recall"}...], "kmeans": {...}}.
"""
import argparse
import json
import time

import h5py
import numpy as np


def recall(ids, truth, k):
    hits = sum(len(np.intersect1d(a[:k], b[:k])) for a, b in zip(ids, truth))
    return hits / (len(ids) * k)


def timed_search(search, q, rounds):
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = search(q)
        best = min(best, time.perf_counter() - t0)
    return len(q) / best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)        # FILE.h5:/path
    ap.add_argument("--queries", required=True)
    ap.add_argument("--truth", required=True)       # an .h5 with ids [Q, >=k]
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--efs", default="10,16,24,32,48,64,96,128,256")
    ap.add_argument("--nprobes", default="1,2,4,8,16,32,64")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--pq-m", type=int, default=56)
    ap.add_argument("--kmeans-iters", type=int, default=10)
    ap.add_argument("--only", default="hnswlib,faiss-hnsw,faiss-ivf,faiss-pq,faiss-kmeans")
    a = ap.parse_args()

    def load(spec):
        f, p = spec.split(":", 1)
        with h5py.File(f, "r") as h:
            return np.ascontiguousarray(h[p][:], dtype=np.float32)

    x, q = load(a.base), load(a.queries)
    with h5py.File(a.truth, "r") as h:
        truth = h["ids"][:, : a.k]
    efs = [int(v) for v in a.efs.split(",")]
    nprobes = [int(v) for v in a.nprobes.split(",")]
    only = set(a.only.split(","))
    results, versions, kmeans = [], {}, {}

    if "hnswlib" in only:
        import hnswlib
        from importlib.metadata import version
        versions["hnswlib"] = version("hnswlib")
        idx = hnswlib.Index(space="l2", dim=x.shape[1])
        t0 = time.perf_counter()
        idx.init_index(max_elements=len(x), M=16, ef_construction=200, random_seed=100)
        idx.add_items(x, np.arange(len(x)), num_threads=a.threads)
        build = time.perf_counter() - t0
        idx.set_num_threads(a.threads)
        for ef in efs:
            idx.set_ef(max(ef, a.k))
            qps, (ids, _) = timed_search(lambda qq: idx.knn_query(qq, k=a.k, num_threads=a.threads), q, a.rounds)
            results.append({"system": f"hnswlib {versions['hnswlib']}", "index": "HNSW M16 efC200", "build_s": build,
                            "setting": "ef", "value": ef, "qps": qps, "recall": recall(ids, truth, a.k)})

    if only & {"faiss-hnsw", "faiss-ivf", "faiss-pq", "faiss-kmeans"}:
        import faiss
        faiss.omp_set_num_threads(a.threads)
        versions["faiss"] = faiss.__version__
        name = f"faiss {faiss.__version__}"
        if "faiss-hnsw" in only:
            idx = faiss.IndexHNSWFlat(x.shape[1], 32)
            t0 = time.perf_counter()
            idx.add(x)
            build = time.perf_counter() - t0
            for ef in efs:
                idx.hnsw.efSearch = max(ef, a.k)
                qps, (_, ids) = timed_search(lambda qq: idx.search(qq, a.k), q, a.rounds)
                results.append({"system": name, "index": "HNSW32", "build_s": build, "setting": "ef", "value": ef,
                                "qps": qps, "recall": recall(ids, truth, a.k)})
        for kind in ("faiss-ivf", "faiss-pq"):
            if kind not in only:
                continue
            factory = f"IVF{a.nlist},Flat" if kind == "faiss-ivf" else f"IVF{a.nlist},PQ{a.pq_m}"
            idx = faiss.index_factory(x.shape[1], factory)
            t0 = time.perf_counter()
            idx.train(x)
            idx.add(x)
            build = time.perf_counter() - t0
            for nprobe in nprobes:
                idx.nprobe = nprobe
                qps, (_, ids) = timed_search(lambda qq: idx.search(qq, a.k), q, a.rounds)
                results.append({"system": name, "index": factory, "build_s": build, "setting": "nprobe",
                                "value": nprobe, "qps": qps, "recall": recall(ids, truth, a.k)})
        if "faiss-kmeans" in only:
            km = faiss.Kmeans(x.shape[1], a.nlist, niter=a.kmeans_iters, seed=1, max_points_per_centroid=1 << 20)
            t0 = time.perf_counter()
            km.train(x)
            kmeans = {"system": name, "rows": len(x), "k": a.nlist, "iters": a.kmeans_iters,
                      "seconds": time.perf_counter() - t0, "objective": float(km.obj[-1])}
        flat = faiss.IndexFlatL2(x.shape[1])
        flat.add(x)
        _, exact = flat.search(q, a.k)
        agree = float(np.mean([len(np.intersect1d(u, v)) / a.k for u, v in zip(exact, truth)]))
        versions["truth_agreement_with_faiss_flat"] = agree
    print(json.dumps({"versions": versions, "results": results, "kmeans": kmeans}))


if __name__ == "__main__":
    main()
