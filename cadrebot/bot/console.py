"""Console chat: the same conversation logic as Telegram, on a terminal, with no token."""

from __future__ import annotations

from collections.abc import Callable

from cadrebot.handlers.qa import AnswerComposer, render_answer, render_more_sources

WELCOME = (
    "您好！我是乡村振兴政策助手。请直接输入政策问题，例如：监测对象识别认定要多少天？\n"
    "输入 /help 查看帮助，/more 查看上一个回答的更多出处，/quit 退出。"
)
HELP = (
    "直接输入问题即可查询政策文件，回答会注明文件、文号和条目。\n"
    "/more  上一个回答的更多出处\n"
    "/quit  退出"
)


def run_console(
    composer: AnswerComposer,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> None:
    write(WELCOME)
    last = None
    while True:
        try:
            line = read("你：").strip()
        except (EOFError, KeyboardInterrupt):
            write("\n再见！")
            return
        if not line:
            continue
        if line in {"/quit", "/exit", "退出"}:
            write("再见！")
            return
        if line in {"/help", "/start", "帮助"}:
            write(HELP)
            continue
        if line in {"/more", "更多出处"}:
            write(render_more_sources(last) if last is not None else "还没有可以展开的回答。")
            continue
        last = composer.answer(line)
        write("助手：" + render_answer(last))
