"""The ``cadrebot`` command: index, chat, ask, search, eval."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cadrebot.bot.wiring import Knowledge, build_index_with_progress, build_knowledge, ensure_index
from cadrebot.evaluation import load_items, run_eval
from cadrebot.handlers.qa import render_answer
from cadrebot.indexer.embedders import EmbedderError
from cadrebot.indexer.store import IndexMismatchError, IndexNotFoundError
from cadrebot.settings import Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cadrebot", description="乡村振兴政策助手")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    idx = sub.add_parser("index", help="build or update the index from the knowledge folder")
    idx.add_argument("--rebuild", action="store_true", help="rebuild even if nothing changed")
    sub.add_parser("chat", help="interactive console chat")
    ask = sub.add_parser("ask", help="answer one question")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true")
    search = sub.add_parser("search", help="show the raw top passages for a query")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--json", action="store_true")
    ev = sub.add_parser("eval", help="score retrieval and answers on a question set (JSONL)")
    ev.add_argument("file", type=Path)
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--details", action="store_true", help="print every question's outcome")
    return p


def _dump(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _ready(settings: Settings, knowledge: Knowledge) -> None:
    ensure_index(settings, knowledge)
    knowledge.searcher.load()


def cmd_index(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    report = build_index_with_progress(knowledge.builder, rebuild=args.rebuild)
    if report.up_to_date:
        print(f"索引已是最新（版本 {report.version}，{report.chunks} 段），无需更新。")
        return 0
    print(
        f"索引版本 {report.version}：{report.documents} 份文件，{report.chunks} 段；"
        f"新向量化 {report.embedded} 段，复用 {report.reused} 段；用时 {report.seconds:.1f} 秒。"
    )
    for label, names in (
        ("新增", report.added),
        ("更新", report.changed),
        ("移除", report.removed),
    ):
        if names:
            print(f"{label}：{', '.join(names)}")
    return 0


def cmd_chat(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    from cadrebot.bot.console import run_console

    _ready(settings, knowledge)
    run_console(knowledge.composer)
    return 0


def cmd_ask(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    _ready(settings, knowledge)
    answer = knowledge.composer.answer(args.question)
    if args.json:
        _dump(answer.to_json())
    else:
        print(render_answer(answer))
    return 0


def cmd_search(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    _ready(settings, knowledge)
    hits = knowledge.searcher.search(args.query, top_k=max(1, args.top_k))
    if args.json:
        _dump([h.to_json() for h in hits])
        return 0
    for n, h in enumerate(hits, 1):
        print(f"{n}. [{h.score:.4f} 向量{h.dense:.3f} 词{h.lexical:.2f}] {h.meta.citation_label()}")
        print(f"   {h.chunk.section_label()}")
        print(f"   {h.chunk.text[:160]}")
    return 0


def cmd_eval(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    if not args.file.exists():
        print(f"找不到问题集文件：{args.file}", file=sys.stderr)
        return 2
    _ready(settings, knowledge)
    knowledge.composer.answer("预热")  # the first query pays one-off costs; do not count it
    metrics, results = run_eval(load_items(args.file), knowledge.searcher, knowledge.composer)
    if args.details:
        for r in results:
            mark = "NEG" if r.item.negative else f"rank={r.rank}"
            ok = "" if r.item.negative else (" ok" if r.answer_ok else " WRONG")
            print(f"{r.item.id} {mark} found={r.answer.found}{ok} :: {r.answer.answer[:80]}")
    if args.json:
        _dump(metrics)
    else:
        for key, value in metrics.items():
            print(f"{key:>20}: {value}")
    return 0


COMMANDS = {
    "index": cmd_index,
    "chat": cmd_chat,
    "ask": cmd_ask,
    "search": cmd_search,
    "eval": cmd_eval,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings()
    try:
        knowledge = build_knowledge(settings)
        return COMMANDS[args.command](settings, knowledge, args)
    except (EmbedderError, IndexMismatchError, IndexNotFoundError, FileNotFoundError) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
