"""Cleaning steps on fragments copied from the seed documents."""

from __future__ import annotations

import pytest

from cadrebot.indexer.cleaning import (
    clean_text,
    fold_spaces,
    join_broken_lines,
    normalize_doc_numbers,
    normalize_punctuation,
    replace_latex,
    strip_markdown,
)

# jiangxi-2023-work-points, item 3: a sentence broken at a page end.
PAGE_BREAK = (
    "3. 规范风险消除管理。加强监测对象动态管理，对收入稳定\n"
    "\n"
    "持续半年以上且超过当年监测范围、“三保障”及饮水安全持续巩固。（责任单位：省乡村振兴局）\n"
    "\n"
    "4. 巩固义务教育保障。健全教育帮扶动态监测机制。"
)


def test_page_break_inside_a_sentence_is_joined_without_space() -> None:
    lines = clean_text(PAGE_BREAK).split("\n")
    assert lines[0].startswith("3.规范风险消除管理")
    assert "对收入稳定持续半年以上且超过当年监测范围" in lines[0]
    assert lines[-1].startswith("4.巩固义务教育保障")  # the next item stays its own line


def test_number_split_from_its_measure_word_is_joined() -> None:
    raw = "9. **落实防贫保险保障。**规范开展防贫保险工作，指导全省 110\n\n个有巩固脱贫成果任务的县"
    assert (
        clean_text(raw)
        == "9.落实防贫保险保障。规范开展防贫保险工作，指导全省110个有巩固脱贫成果任务的县"
    )


def test_short_title_before_a_paragraph_is_not_joined() -> None:
    raw = (
        "赣州蓉江新区 2023 年巩固拓展脱贫攻坚 成果同乡村振兴有效衔接工作要点\n\n"
        "为切实做好 2023 年全区巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作，特制定如下工作要点。"
    )
    assert clean_text(raw).split("\n\n") == [
        "赣州蓉江新区2023年巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作要点",
        "为切实做好2023年全区巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作，特制定如下工作要点。",
    ]


@pytest.mark.parametrize(
    "header",
    [
        "一、主要目标\n\n坚持以习近平新时代中国特色社会主义思想为指导，",
        "（一）指导思想\n\n坚持以习近平新时代中国特色社会主义思想为指导，",
        "附件 1\n\n2023 年度主要工作指标体系",
        "赣州蓉江新区巩固拓展脱贫攻坚成果同乡村振兴有效衔接领导小组\n\n赣蓉振领字〔2023〕1号",
    ],
)
def test_headings_and_header_lines_are_never_joined(header: str) -> None:
    assert len(clean_text(header).split("\n\n")) == 2


def test_enumeration_broken_after_a_comma_is_joined_even_for_short_lines() -> None:
    raw = "确保搬迁脱贫群众稳得住、能融入、\n\n逐步能致富。"
    assert join_broken_lines(raw) == "确保搬迁脱贫群众稳得住、能融入、逐步能致富。"


def test_soft_wrapped_title_is_joined() -> None:
    raw = " 关于印发《浮梁县 2023 年巩固拓展脱贫\n攻坚 成果“七大专项行动”\n实施方案》的通知 "
    assert (
        clean_text(raw)
        == "关于印发《浮梁县2023年巩固拓展脱贫攻坚成果“七大专项行动”实施方案》的通知"
    )


def test_table_rows_stay_on_their_own_lines() -> None:
    raw = (
        "8\t全省脱贫人口和监测对象就业规模\t≥ 130.9 万人\t国家下达\n\n"
        "序号\t工作指标\t目标值\t指标说明"
    )
    assert clean_text(raw).split("\n\n") == [
        "8\t全省脱贫人口和监测对象就业规模\t≥130.9万人\t国家下达",
        "序号\t工作指标\t目标值\t指标说明",
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("就业规模稳定在 130.9 万人以上", "就业规模稳定在130.9万人以上"),
        (
            "2023 年是全面贯彻落实党的二十大精神的开局之年",
            "2023年是全面贯彻落实党的二十大精神的开局之年",
        ),
        (
            "全省巩固拓展脱贫攻坚成果同乡村振兴 有效衔接",
            "全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接",
        ),
        ("≥ 1 项", "≥1项"),
        ("增长 7.5 % 左右", "增长7.5%左右"),
        ("4月底≥30% 6月底≥50%", "4月底≥30% 6月底≥50%"),
        ("multilingual  e5 small model", "multilingual e5 small model"),
        ("  浮梁县巩固拓展脱贫攻坚成果工作领导小组 ", "浮梁县巩固拓展脱贫攻坚成果工作领导小组"),
    ],
)
def test_fold_spaces(raw: str, expected: str) -> None:
    assert fold_spaces(raw) == expected


def test_fold_spaces_keeps_tabs_between_cells() -> None:
    assert (
        fold_spaces("1\t全省脱贫人口 人均纯收入增幅\t≥ 12.5%")
        == "1\t全省脱贫人口人均纯收入增幅\t≥12.5%"
    )


def test_bold_markers_and_markdown_bullets_are_stripped() -> None:
    raw = (
        "7. **巩固饮水安全保障。**落实农村供水\n"
        "- 附件：1. 2023年度主要工作指标体系\n"
        "## 一、总体要求"
    )
    assert strip_markdown(raw) == (
        "7. 巩固饮水安全保障。落实农村供水\n附件：1. 2023年度主要工作指标体系\n一、总体要求"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"$\geq 12.5\%$", "≥12.5%"),
        (r"$\geq 99\%$", "≥99%"),
        (r"$\leq 10\%$", "≤10%"),
        (r"$3 \times 4$", "3×4"),
    ],
)
def test_latex_fragments_become_plain_symbols(raw: str, expected: str) -> None:
    assert replace_latex(raw) == expected


def test_latex_in_a_table_row() -> None:
    row = "1\t全省脱贫人口人均纯收入增幅\t$\\geq 12.5\\%$\t根据 2023 年度实现"
    assert clean_text(row) == "1\t全省脱贫人口人均纯收入增幅\t≥12.5%\t根据2023年度实现"


def test_doc_number_brackets_are_normalised() -> None:
    assert normalize_doc_numbers("赣党农字[2023]10号") == "赣党农字〔2023〕10号"
    assert normalize_doc_numbers("信发（2024）2号") == "信发〔2024〕2号"


def test_ascii_punctuation_in_chinese_text_becomes_full_width() -> None:
    raw = "(一)指导思想\n2020年底,全省带动经营主体4.96万个(责任单位:省乡村振兴局;省财政厅)"
    assert normalize_punctuation(raw) == (
        "（一）指导思想\n2020年底，全省带动经营主体4.96万个（责任单位：省乡村振兴局；省财政厅）"
    )


def test_ascii_punctuation_between_latin_and_digits_is_kept() -> None:
    assert normalize_punctuation("1,000 items (v2) at 12:30") == "1,000 items (v2) at 12:30"


def test_clean_text_is_idempotent() -> None:
    once = clean_text(PAGE_BREAK)
    assert clean_text(once) == once
