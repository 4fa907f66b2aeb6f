"""Chinese word segmentation for BM25 and answer selection: jieba plus a policy-term dictionary."""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

import jieba

log = logging.getLogger(__name__)

# Function words and question words carry no topic; keeping them lets "多少" or "的" match
# every passage and drowns the terms that matter.
STOPWORDS = frozenset(
    """的 了 和 与 及 或 等 是 在 要 对 把 被 将 为 以 于 其 之 并 也 都 而 就 还 又 这 那 有 个
    多少 几 什么 怎么 怎样 如何 哪 哪些 哪个 哪天 哪里 吗 呢 吧 啊 么 该 能 可以 需要 一般 分别
    请问 问 我 我们 你 你们 他 她 它 他们 村里 有人 做 办 用来 是否 不 没有 多久 一次 达到 年 月 日
    因为 所以 时候 怎么办 如果 的话 应该 是不是 能不能 什么样 哪天 该怎么办
    """.split()  # noqa: SIM905 - a word list reads better as text
) | frozenset(
    # Everyday filler of a farmer's message (who, when, how it feels): no document uses
    # these, so as question terms they would only count as "not covered".
    """家里 家中 屋里 男人 女人 老公 老婆 丈夫 媳妇 一下 下子 一下子 突然 老是 总是 经常
    一直 现在 眼下 咋 咋办 咋整 啥 俺 咱 咱们 俺们 想 想要 打算 有没有 没 没了 成问题 那个
    这个 东西 一点 点儿
    """.split()  # noqa: SIM905
)
# Words a farmer and a document use for the same thing. A question term counts as found
# when the passage has it or its counterpart; BM25 queries get both.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "申报": ("申请",),
    "申请": ("申报",),
    "补贴": ("补助", "奖补"),
    "补助": ("补贴",),
    "领取": ("发放",),
    "发钱": ("发放",),
    "贫困户": ("脱贫户",),
    "天": ("日",),
    "日": ("天",),
}

_TOKEN_RE = re.compile(r"[\w%．.]+", re.UNICODE)


class PolicyTokenizer:
    """jieba with the policy-term user dictionary; load once with :meth:`warm_up`."""

    def __init__(self) -> None:
        self._jieba: jieba.Tokenizer | None = None
        self._pos: Any = None  # jieba.posseg.POSTokenizer

    def warm_up(self) -> None:
        if self._jieba is not None:
            return
        # jieba announces its dictionary loading on stderr at INFO; that is noise in a chat.
        jieba.setLogLevel(logging.WARNING)
        tok = jieba.Tokenizer()
        tok.initialize()
        terms = resources.files("cadrebot.indexer").joinpath("policy_terms.txt")
        # jieba leaves a file it opens by name unclosed; hand it an open file instead.
        with terms.open("rb") as fh:
            tok.load_userdict(fh)
        # jieba.posseg loads its HMM tables when imported (~1 s): import it here, not at the
        # top, so commands that never tag places (index) do not pay for it.
        from jieba import posseg

        self._jieba = tok
        self._pos = posseg.POSTokenizer(tok)
        log.debug("jieba ready with policy terms")

    @property
    def _tok(self) -> jieba.Tokenizer:
        if self._jieba is None:
            self.warm_up()
        assert self._jieba is not None
        return self._jieba

    def tokens(self, text: str) -> list[str]:
        """Search-mode tokens without punctuation or stopwords, for BM25."""
        out: list[str] = []
        for word in self._tok.lcut_for_search(text):
            w = word.strip().lower()
            if not w or w in STOPWORDS or not _TOKEN_RE.fullmatch(w):
                continue
            out.append(w)
        return out

    def place_names(self, text: str) -> list[str]:
        """Words jieba tags as place names (ns), e.g. 北京 in "北京低保标准是多少"."""
        if self._pos is None:
            self.warm_up()
        assert self._pos is not None
        return [p.word for p in self._pos.lcut(text) if p.flag == "ns" and len(p.word) >= 2]
