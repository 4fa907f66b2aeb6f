"""Parsers for form answers: text in, normalised value out, or :class:`InvalidAnswer` with a
specific, polite reason in Chinese. Pure functions; no state, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

from cadrebot.handlers.masking import quotable


class InvalidAnswer(ValueError):
    """The answer cannot be accepted; ``reason`` tells the user why (Chinese)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII, ideographic space to space), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


# --------------------------------------------------------------------------- text

# Control characters other than line breaks and tabs: nothing a person means to type, and
# a spreadsheet refuses them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_text(text: str, *, max_length: int | None = None, min_length: int = 1) -> str:
    # Free text keeps its full-width punctuation (NFKC would turn "，" into ",").
    value = _CONTROL.sub("", text).strip()
    if not value:
        raise InvalidAnswer("内容不能为空。")
    if len(value) < min_length:
        raise InvalidAnswer(f"内容太短，请至少填写{min_length}个字。")
    if max_length is not None and len(value) > max_length:
        raise InvalidAnswer(f"内容过长（{len(value)}字），请精简到{max_length}字以内后重新输入。")
    return value


# --------------------------------------------------------------------------- person names

NAME_MIN_LENGTH = 2
NAME_MAX_LENGTH = 20
NAME_DOT = "·"  # the 间隔号 of ethnic and transliterated names: 阿卜杜拉·买买提
_NAME_DOTS = frozenset("·•‧∙・･.。")  # what people type for it
_CJK_RANGES = (
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # Unified Ideographs
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x20000, 0x3134F),  # Extensions B-G
)


def _is_han(ch: str) -> bool:
    return ch == "〇" or any(low <= ord(ch) <= high for low, high in _CJK_RANGES)


def _is_latin_letter(ch: str) -> bool:
    return ch.isalpha() and "LATIN" in unicodedata.name(ch, "")


def parse_person_name(text: str) -> str:
    """A person's name: 2-20 Chinese characters or letters, 间隔号 allowed between parts.

    Invisible format characters (zero-width spaces) and spaces are removed first; a space
    between two Latin words stays ("John Smith"). Nothing typed is quoted back.
    """
    value = "".join(ch for ch in normalize(text) if unicodedata.category(ch) != "Cf")
    value = "".join(NAME_DOT if ch in _NAME_DOTS else ch for ch in value)
    words = value.split()
    kept = words[:1]
    for word in words[1:]:  # join the words; keep a space only between two Latin ones
        latin_gap = _is_latin_letter(kept[-1][-1]) and _is_latin_letter(word[0])
        kept.append(f" {word}" if latin_gap else word)
    value = "".join(kept)
    if not value:
        raise InvalidAnswer("姓名不能为空，请输入申报人的姓名。")
    if not all(_is_han(ch) or _is_latin_letter(ch) or ch in (NAME_DOT, " ") for ch in value):
        raise InvalidAnswer(
            "姓名只能由汉字或字母组成（少数民族姓名可用间隔号“·”），"
            "不能包含数字、符号或表情，请重新输入。"
        )
    if value[0] == NAME_DOT or value[-1] == NAME_DOT or NAME_DOT * 2 in value:
        raise InvalidAnswer("姓名中的间隔号“·”只能用在两部分名字之间，请重新输入。")
    letters = len(value.replace(" ", ""))
    if letters < NAME_MIN_LENGTH:
        raise InvalidAnswer(f"姓名太短，至少{NAME_MIN_LENGTH}个字，请输入完整的姓名。")
    if letters > NAME_MAX_LENGTH:
        raise InvalidAnswer(f"姓名最多{NAME_MAX_LENGTH}个字，请核对后重新输入。")
    return value


# --------------------------------------------------------------------------- ID number (GB 11643)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11)


def id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character for the first 17 digits (ISO 7064 MOD 11-2)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


_DASHES = frozenset("-‐‑‒–—―−－﹣")


def parse_id_number(text: str, *, today: date) -> str:
    """An 18-character 居民身份证号码 with a valid birth date and check character.

    Spaces, dashes and invisible characters inside the number are tolerated; a lowercase x
    is upper-cased.
    """
    value = "".join(
        ch
        for ch in normalize(text)
        if not (ch.isspace() or ch in _DASHES or unicodedata.category(ch) == "Cf")
    ).upper()
    if not value:
        raise InvalidAnswer("身份证号不能为空。")
    if len(value) != 18:
        raise InvalidAnswer(f"身份证号应为18位，您输入的是{len(value)}位，请核对后重新输入。")
    if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        raise InvalidAnswer("身份证号前17位应为数字，最后一位为数字或X，请核对后重新输入。")
    if value[0] == "0" or value[0] == "9":
        raise InvalidAnswer("身份证号开头的地区码不正确，请核对后重新输入。")
    try:
        birth = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidAnswer(
            "身份证号中的出生日期（第7-14位）不是有效日期，请核对后重新输入。"
        ) from None
    if birth > today or birth.year < 1900:
        raise InvalidAnswer("身份证号中的出生日期（第7-14位）不正确，请核对后重新输入。")
    if id_check_char(value[:17]) != value[17]:
        raise InvalidAnswer(
            "身份证号校验位（最后一位）不正确，可能有数字输错了，请核对后重新输入。"
        )
    return value


# --------------------------------------------------------------------------- mobile


def parse_mobile(text: str) -> str:
    """An 11-digit mainland mobile number 1[3-9]xxxxxxxxx; spaces, dashes and +86 tolerated."""
    value = re.sub(r"[\s\-]", "", normalize(text))
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086"):
        value = value[4:]
    if not value.isdigit():
        raise InvalidAnswer("手机号只能包含数字，请输入11位手机号码。")
    if len(value) != 11:
        raise InvalidAnswer(f"手机号应为11位，您输入的是{len(value)}位，请核对后重新输入。")
    if not re.fullmatch(r"1[3-9]\d{9}", value):
        raise InvalidAnswer("手机号应以13到19开头，请核对后重新输入。")
    return value


# --------------------------------------------------------------------------- numbers

_CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
# Units people type after an amount; stripped before parsing.
_NUMBER_SUFFIXES = (
    "元",
    "块钱",
    "块",
    "人",
    "口人",
    "口",
    "个",
    "位",
    "亩",
    "头",
    "只",
    "羽",
    "箱",
)


def parse_chinese_integer(text: str) -> int | None:
    """Small Chinese numerals: 五, 十二, 三百零五, 两千, 一万二千. None if not one."""
    if not text or any(ch not in _CN_DIGITS and ch not in _CN_UNITS and ch != "万" for ch in text):
        return None
    total = 0
    if "万" in text:
        high, _, text = text.partition("万")
        high_value = parse_chinese_integer(high) if high else 1
        if high_value is None:
            return None
        total = high_value * 10000
        if not text:
            return total
    section = 0
    digit: int | None = None
    for ch in text:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        else:
            section += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
    if digit is not None:
        section += digit
    return total + section


def parse_number(
    text: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    decimals: int = 0,
    unit: str = "",
) -> int | float:
    """A number; accepts "1,200", "1.5万", "3000元", "五口人". Integer unless ``decimals``."""
    raw = re.sub(r"[\s,，]", "", normalize(text))
    for suffix in sorted(_NUMBER_SUFFIXES, key=len, reverse=True):
        if raw.endswith(suffix) and len(raw) > len(suffix):
            raw = raw[: -len(suffix)]
            break
    multiplier = Decimal(1)
    if raw.endswith("万") and len(raw) > 1 and not parse_chinese_integer(raw):
        raw, multiplier = raw[:-1], Decimal(10000)
    value: Decimal | None
    try:
        value = Decimal(raw) * multiplier
    except InvalidOperation:
        chinese = parse_chinese_integer(raw)
        value = None if chinese is None else Decimal(chinese) * multiplier
    if value is None or not value.is_finite():
        raise InvalidAnswer("请输入一个数字（例如：3 或 1500）。")
    value = value.normalize()
    exponent = value.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places > decimals:
        if decimals == 0:
            raise InvalidAnswer("请输入整数。")
        raise InvalidAnswer(f"最多保留{decimals}位小数。")
    shown_unit = unit or ""
    if min_value is not None and value < Decimal(str(min_value)):
        raise InvalidAnswer(_range_reason(min_value, max_value, shown_unit))
    if max_value is not None and value > Decimal(str(max_value)):
        raise InvalidAnswer(_range_reason(min_value, max_value, shown_unit))
    return int(value) if value == value.to_integral_value() else float(value)


def _format_bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _range_reason(min_value: float | None, max_value: float | None, unit: str) -> str:
    if min_value is not None and max_value is not None:
        span = f"{_format_bound(min_value)}到{_format_bound(max_value)}{unit}之间"
        return f"数值超出范围，请输入{span}的数字。"
    if min_value is not None:
        return f"数值太小，请输入不小于{_format_bound(min_value)}{unit}的数字。"
    assert max_value is not None
    return f"数值太大，请输入不超过{_format_bound(max_value)}{unit}的数字。"


# --------------------------------------------------------------------------- choices


def parse_choice(text: str, choices: Sequence[str]) -> str:
    """One option, by its number ("2") or its text ("监测户"); a unique fragment ("监测")
    of an option's text also counts."""
    value = normalize(text).rstrip("。.")
    picked = _match_option(value, choices)
    if picked is None:
        raise InvalidAnswer(f"{_not_an_option([value], choices)}{_choice_hint(choices)}")
    return picked


def parse_multi_choice(text: str, choices: Sequence[str]) -> list[str]:
    """Several options: "1,3,5", "1 3 5", "因病、因灾"; returned in the options' order."""
    value = normalize(text)
    tokens = [t for t in re.split(r"[\s,，、;；/]+", value) if t]
    # "135" is a common way to type three options when there are fewer than ten of them.
    if len(tokens) == 1 and tokens[0].isdigit() and len(choices) < 10 and len(tokens[0]) > 1:
        tokens = list(tokens[0])
    if not tokens:
        raise InvalidAnswer(f"请至少选择一项，{_choice_hint(choices)}")
    picked: set[str] = set()
    unknown: list[str] = []
    for token in tokens:
        match = _match_option(token.rstrip("。."), choices)
        if match is None:
            unknown.append(token)
        else:
            picked.add(match)
    if unknown:
        raise InvalidAnswer(f"{_not_an_option(unknown, choices)}{_choice_hint(choices)}")
    return [c for c in choices if c in picked]


def _match_option(value: str, choices: Sequence[str]) -> str | None:
    if value in choices:
        return value
    if value.isdigit():
        index = int(value)
        return choices[index - 1] if 1 <= index <= len(choices) else None
    if len(value) >= 2:
        partial = [c for c in choices if value in c]
        if len(partial) == 1:
            return partial[0]
    return None


def _not_an_option(unknown: Sequence[str], choices: Sequence[str]) -> str:
    if len(unknown) == 1 and unknown[0].isascii() and unknown[0].isdigit():
        if len(unknown[0]) <= 2:
            return f"没有第{int(unknown[0])}个选项，"
        return "没有这个序号的选项，"
    if all(quotable(token) for token in unknown):
        return f"没有找到{'、'.join(f'“{t}”' for t in unknown)}这个选项，"
    return "您回复的内容中有不在选项里的，"


def _choice_hint(choices: Sequence[str]) -> str:
    if len(choices) <= 1:
        return "请重新选择。"
    return f"请回复选项序号（1到{len(choices)}）或选项文字。"


# --------------------------------------------------------------------------- yes / no

_YES = frozenset(
    {"是", "是的", "对", "对的", "好", "好的", "同意", "愿意", "可以", "有", "y", "yes"}
)
_NO = frozenset({"否", "不", "不是", "不对", "不同意", "不愿意", "不可以", "没有", "无", "n", "no"})


def parse_yes_no(text: str) -> bool:
    """是 / 否 (and common variants, or the option numbers 1 / 2)."""
    value = normalize(text).rstrip("。.!！").lower()
    if value in _YES or value == "1":
        return True
    if value in _NO or value == "2":
        return False
    raise InvalidAnswer("请回复“是”或“否”。")


# --------------------------------------------------------------------------- dates


def parse_date(
    text: str, *, today: date, not_after: date | None = None, not_before: date | None = None
) -> date:
    """2026-05-12, 2026/5/12, 2026.5.12, 2026年5月12日, 5月12日 (this year), 今天, 昨天."""
    value = re.sub(r"\s+", "", normalize(text))
    relative = {"今天": 0, "今日": 0, "昨天": 1, "昨日": 1, "前天": 2}
    parsed: date | None = None
    if value in relative:
        parsed = date.fromordinal(today.toordinal() - relative[value])
    else:
        full = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?", value)
        short = re.fullmatch(r"(\d{1,2})月(\d{1,2})[日号]?", value)
        try:
            if full:
                parsed = date(int(full[1]), int(full[2]), int(full[3]))
            elif short:
                parsed = date(today.year, int(short[1]), int(short[2]))
        except ValueError:
            raise InvalidAnswer("这不是一个有效的日期，请核对月份和日期。") from None
    if parsed is None:
        raise InvalidAnswer("请按“2026-05-12”或“2026年5月12日”的格式输入日期。")
    if not_after is not None and parsed > not_after:
        raise InvalidAnswer(f"日期不能晚于{not_after.isoformat()}。")
    if not_before is not None and parsed < not_before:
        raise InvalidAnswer(f"日期不能早于{not_before.isoformat()}。")
    return parsed
