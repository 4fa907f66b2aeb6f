"""The ``cadrebot`` command: index, chat, ask, search, eval, run, serve, web, user."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cadrebot.bot.eval_chat import ReplayedConversation
from cadrebot.bot.wiring import (
    Knowledge,
    build_conversation_stack,
    build_index_with_progress,
    build_knowledge,
    ensure_index,
)
from cadrebot.evaluation import load_items, run_eval
from cadrebot.handlers.access import Refusal
from cadrebot.handlers.accounts import AccountError
from cadrebot.handlers.conversation import MAX_MESSAGE_CHARS, storable_text
from cadrebot.handlers.qa import render_answer
from cadrebot.indexer.embedders import EmbedderError
from cadrebot.indexer.offers_file import load_offers, offers_path
from cadrebot.indexer.store import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from cadrebot.settings import Settings
from cadrebot.storage import install_sensitive_data_filter
from cadrebot.storage.backup import BackupError, BackupReport, backup_database, restore_database


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cadrebot", description="乡村振兴政策助手")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    idx = sub.add_parser("index", help="build or update the index from the knowledge folder")
    idx.add_argument("--rebuild", action="store_true", help="rebuild even if nothing changed")
    chat = sub.add_parser("chat", help="interactive console chat (Q&A, intake forms, cases)")
    chat.add_argument(
        "--user", default=None, help="console user id (default: the operating-system user name)"
    )
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
    backup = sub.add_parser(
        "backup", help="back up the case database to a file (safe while running)"
    )
    backup.add_argument("path", type=Path, help="backup file to write (replaced if present)")
    run = sub.add_parser("run", help="serve the Telegram bot (long polling, or --webhook)")
    run.add_argument(
        "--webhook", action="store_true", help="serve a webhook instead of long polling"
    )
    serve = sub.add_parser(
        "serve", help="serve the Telegram webhook with N worker processes (shared database)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (more than 1 needs PostgreSQL)"
    )
    serve.add_argument(
        "--port", type=int, default=None, help="port (default: CADREBOT_TELEGRAM_WEBHOOK_PORT)"
    )
    web = sub.add_parser("web", help="serve the web console (cadres, admins) and the web chat")
    web.add_argument("--host", default=None, help="address (default: CADREBOT_WEB_HOST)")
    web.add_argument("--port", type=int, default=None, help="port (default: 8080)")
    web.add_argument(
        "--workers", type=int, default=1, help="worker processes (more than 1 needs PostgreSQL)"
    )
    user = sub.add_parser("user", help="web console accounts: add, list, disable")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account (password from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "cadre"])
    add.add_argument("--township", default=None)
    add.add_argument("--village", default=None)
    add.add_argument("--password", default=None, help="(else read from stdin)")
    user_sub.add_parser("list", help="list accounts")
    disable = user_sub.add_parser("disable", help="deactivate an account (ends its sessions)")
    disable.add_argument("name")
    restore = sub.add_parser("restore", help="restore the case database from a backup file")
    restore.add_argument("path", type=Path, help="a file written by `cadrebot backup`")
    restore.add_argument(
        "--replace", action="store_true", help="overwrite a database that already has data"
    )
    return p


def _dump(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _ready(settings: Settings, knowledge: Knowledge) -> None:
    ensure_index(settings, knowledge)
    knowledge.searcher.load()


def cmd_index(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    report = build_index_with_progress(knowledge.builder, rebuild=args.rebuild)
    if report.repaired is not None:
        print(f"已修复：{report.repaired.describe_zh()}，已从知识库文件重建。")
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


def _console_user() -> str:
    try:
        return getpass.getuser() or "console"
    except Exception:  # no USER/LOGNAME and no passwd entry (containers)
        return "console"


@contextmanager
def _chat_log_file(settings: Settings, verbose: bool) -> Iterator[Path | None]:
    """While chatting, send warnings (and their tracebacks) to a file, not over the chat.

    Only the handler ``logging.basicConfig`` installed on the root logger (a plain
    StreamHandler) is swapped out, and it is put back afterwards. With ``--verbose`` the
    debug output stays on the terminal.
    """
    root = logging.getLogger()
    terminal = [h for h in root.handlers if type(h) is logging.StreamHandler]
    if verbose or not terminal:
        yield None
        return
    path = settings.data_dir / "logs" / "chat.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for handler in terminal:
        root.removeHandler(handler)
    root.addHandler(to_file)
    install_sensitive_data_filter(root)
    try:
        yield path
    finally:
        root.removeHandler(to_file)
        to_file.close()
        for handler in terminal:
            root.addHandler(handler)


def cmd_chat(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    from cadrebot.bot.console import run_console

    install_sensitive_data_filter()
    stack = build_conversation_stack(settings, knowledge=knowledge)
    user = args.user or _console_user()
    with stack, _chat_log_file(settings, args.verbose):
        run_console(
            stack.service,
            external_id=user,
            display_name=user,
            files_dir=settings.data_dir / "exports",
        )
    return 0


def cmd_ask(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    question = storable_text(args.question).strip()
    if len(question) > MAX_MESSAGE_CHARS:
        # Checked before anything loads: an overlong question costs seconds of search.
        print(
            f"问题太长了（{len(question)}字），请精简到{MAX_MESSAGE_CHARS}字以内。",
            file=sys.stderr,
        )
        return 2
    _ready(settings, knowledge)
    answer = knowledge.composer.answer(question)
    # The forms the chat would offer under this answer (a hardship described → /report).
    offered = load_offers(offers_path(settings.knowledge_dir)).actions(question)
    if args.json:
        _dump({**answer.to_json(), "actions": [a.command for a in offered]})
    else:
        print(render_answer(answer))
        for action in offered:
            print(f"· {action.label}：发送 {action.command}")
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
    items = load_items(args.file)
    with ReplayedConversation(settings, knowledge.composer) as conversation:
        metrics, results = run_eval(items, knowledge.searcher, knowledge.composer, conversation)
    if args.details:
        for r in results:
            mark = "NEG" if r.item.negative else f"rank={r.rank}"
            ok = "" if r.item.negative else (" ok" if r.answer_ok else " WRONG")
            action = f" action={'ok' if r.action_ok else 'MISSING'}" if r.item.action else ""
            print(
                f"{r.item.id} {mark} found={r.answer.found}{ok}{action} :: {r.answer.answer[:80]}"
            )
    if args.json:
        _dump(metrics)
    else:
        for key, value in metrics.items():
            print(f"{key:>20}: {value}")
    return 0


def _print_tables(report: BackupReport) -> None:
    for name, rows in report.tables.items():
        print(f"  {name}: {rows} 行")


def cmd_backup(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    try:
        report = backup_database(settings.resolved_database_url(), args.path)
    except BackupError as exc:
        print(f"备份失败：{exc}", file=sys.stderr)
        return 2
    print(f"已备份 {report.backend} 数据库到 {report.path}（数据库版本 {report.revision}）：")
    _print_tables(report)
    return 0


def cmd_restore(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    try:
        report = restore_database(settings.resolved_database_url(), args.path, replace=args.replace)
    except BackupError as exc:
        print(f"恢复失败：{exc}", file=sys.stderr)
        return 2
    print(f"已从 {args.path} 恢复 {report.backend} 数据库（数据库版本 {report.revision}）：")
    _print_tables(report)
    return 0


def cmd_run(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    from cadrebot.bot.telegram.app import run

    if not args.verbose:  # a server logs what it does; the other commands stay quiet
        logging.getLogger().setLevel(logging.INFO)
        for noisy in ("httpx", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    install_sensitive_data_filter()
    return run(settings, webhook=args.webhook, knowledge=knowledge)


def cmd_serve(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    from cadrebot.bot.telegram.serve import serve

    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    return serve(settings, workers=args.workers, port=args.port, knowledge=knowledge)


def cmd_web(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    from cadrebot.bot.web.server import serve_web

    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    return serve_web(
        settings, host=args.host, port=args.port, knowledge=knowledge, workers=args.workers
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        first = getpass.getpass("密码：")
        if getpass.getpass("再输入一次：") != first:
            raise AccountError("两次输入的密码不一致。")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user(settings: Settings, knowledge: Knowledge, args: argparse.Namespace) -> int:
    """Accounts need the database only: the index is neither built nor loaded."""
    stack = build_conversation_stack(settings, knowledge=knowledge)
    stack.database.open()
    accounts = stack.accounts
    try:
        if args.user_command == "add":
            view = accounts.create(
                None,
                args.name,
                _read_password(args),
                args.role,
                township=args.township,
                village=args.village,
            )
            place = f"{view.township or ''}{view.village or ''}" or "全县"
            print(f"已创建账号 {view.username}（{view.role.value}，{place}）。")
        elif args.user_command == "list":
            for view in accounts.list_accounts(None):
                state = "active" if view.active else "disabled"
                place = f"{view.township or ''}{view.village or ''}" or "-"
                print(f"{view.username}\t{view.role.value}\t{place}\t{state}")
        else:
            accounts.set_active(None, args.name, False)
            print(f"已停用账号 {args.name}，其登录已全部退出。")
    except Refusal as refusal:
        print(f"错误：{refusal.message}", file=sys.stderr)
        return 2
    finally:
        stack.close()
    return 0


COMMANDS = {
    "index": cmd_index,
    "chat": cmd_chat,
    "ask": cmd_ask,
    "search": cmd_search,
    "eval": cmd_eval,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "run": cmd_run,
    "serve": cmd_serve,
    "web": cmd_web,
    "user": cmd_user,
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
    except (
        EmbedderError,
        IndexMismatchError,
        IndexCorruptError,  # no version verifies (one that does is used instead)
        IndexNotFoundError,
        FileNotFoundError,
    ) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
