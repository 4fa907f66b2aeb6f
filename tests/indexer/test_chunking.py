"""Chunking on fragments copied from the seed documents, and on the real knowledge base."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cadrebot.indexer.catalog import load_document, read_catalog
from cadrebot.indexer.chunking import (
    chunk_document,
    pack_sentences,
    split_responsible,
    split_sentences_outside_brackets,
)
from cadrebot.indexer.types import Chunk, ChunkKind, Document, DocumentMeta
from tests.support.paths import REPO_KNOWLEDGE

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    """A fragment copied verbatim from a seed document (artefacts included)."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def make_doc(text: str, doc_id: str = "fragment") -> Document:
    return Document(
        meta=DocumentMeta(doc_id=doc_id, title=doc_id),
        text=text,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def only(chunks: list[Chunk], needle: str) -> Chunk:
    found = [c for c in chunks if needle in c.text]
    assert len(found) == 1, f"{needle!r} in {len(found)} chunks"
    return found[0]


# jiangxi-2023-work-points: header, preamble, items 1 and 5 (its clause after a page break).
PROVINCIAL = fixture("provincial.txt")

# The indicator table of 附件1, tab-separated, with the header repeated on the next page.
INDICATORS = fixture("indicators.txt")

# rongjiang-2023-work-points: the task list with merged cells, an in-table section row, a
# repeated header, a shifted row, an empty row and a row cut off at the page end.
TASK_LIST = fixture("task_list.txt")

# xinfeng-2024-work-points item 1: longer than one chunk.
LONG_ITEM = fixture("long_item.txt")


@pytest.fixture(scope="module")
def provincial() -> list[Chunk]:
    return chunk_document(make_doc(PROVINCIAL))


def test_item_is_one_chunk_with_its_responsible_units(provincial: list[Chunk]) -> None:
    item = only(provincial, "一般不超过15天")
    assert item.kind == ChunkKind.ITEM
    assert item.text.startswith("1.强化动态监测识别。")
    assert item.text.endswith("人行南昌中心支行等）")
    assert item.section == ("一、坚决守底线，确保不发生规模性返贫", "1. 强化动态监测识别")
    assert item.responsible.startswith("省乡村振兴局、省民政厅")
    assert item.responsible.endswith("人行南昌中心支行等")
    assert item.extra["item_title"] == "强化动态监测识别"


def test_clause_on_its_own_paragraph_is_attached_to_its_item(provincial: list[Chunk]) -> None:
    item = only(provincial, "巩固基本医疗保障")
    assert item.text.endswith(
        "（责任单位：省卫健委、省医保局、省乡村振兴局、省民政厅、省财政厅、省农业农村厅等）"
    )
    assert (
        item.responsible == "省卫健委、省医保局、省乡村振兴局、省民政厅、省财政厅、省农业农村厅等"
    )
    assert not any(c.text.startswith("（责任单位") for c in provincial)


def test_item_broken_by_a_page_break_is_whole(provincial: list[Chunk]) -> None:
    item = only(provincial, "规范风险消除管理")
    assert "对收入稳定持续半年以上" in item.text
    assert item.responsible == "省乡村振兴局"


def test_bold_item_title_and_new_section(provincial: list[Chunk]) -> None:
    item = only(provincial, "拓宽增收致富渠道")
    assert item.section == ("二、持续抓发展，不断缩小收入发展差距", "10. 拓宽增收致富渠道")
    assert "**" not in item.text


def test_notice_header_is_one_heading_chunk(provincial: list[Chunk]) -> None:
    header = provincial[0]
    assert header.kind == ChunkKind.HEADING
    assert header.section == ()
    assert "赣党农字〔2023〕2号" in header.text
    assert "全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接2023年工作要点" in header.text
    assert sum(c.kind == ChunkKind.HEADING for c in provincial) == 1


def test_preamble_is_a_paragraph_split_at_sentence_ends() -> None:
    chunks = chunk_document(make_doc(PROVINCIAL), max_chars=80)
    preamble = [c for c in chunks if c.kind == ChunkKind.PARAGRAPH]
    assert len(preamble) >= 2
    assert all(c.section == () for c in preamble)
    assert all(c.text.endswith("。") for c in preamble)
    assert "".join(c.text for c in preamble).endswith("就业规模稳定在130.9万人以上。")


def test_table_row_repeats_column_headers() -> None:
    chunks = chunk_document(make_doc(INDICATORS))
    row = only(chunks, "就业规模为130.9万人")
    assert row.kind == ChunkKind.TABLE_ROW
    assert row.text.startswith("序号：8；工作指标：全省脱贫人口和监测对象就业规模；")
    assert "目标值：≥130.9万人" in row.text
    assert row.section == ("附件1", "2023年度主要工作指标体系")
    assert "目标值：≥12.5%" in only(chunks, "人均纯收入增幅").text


def test_repeated_header_row_is_not_a_data_row() -> None:
    chunks = chunk_document(make_doc(INDICATORS))
    rows = [c for c in chunks if c.kind == ChunkKind.TABLE_ROW]
    assert [c.extra["row_no"] for c in rows] == ["1", "8", "9"]
    assert not any("序号：序号" in c.text for c in chunks)


@pytest.fixture(scope="module")
def task_rows() -> dict[str, Chunk]:
    chunks = chunk_document(make_doc(TASK_LIST))
    return {c.extra.get("row_no", ""): c for c in chunks if c.kind == ChunkKind.TABLE_ROW}


def test_merged_cell_reaches_the_rows_of_its_span(task_rows: dict[str, Chunk]) -> None:
    # The converter prints a merged cell's text in the middle row of its span: row 1 belongs
    # to the label printed in row 2, row 3 to the label above it.
    assert "工作事项：1.持续做好防返贫监测帮扶" in task_rows["1"].text
    assert "工作事项：1.持续做好防返贫监测帮扶" in task_rows["2"].text
    assert "工作事项：1.持续做好防返贫监测帮扶" in task_rows["3"].text
    assert "任务要求：加强监测对象动态管理" in task_rows["3"].text


def test_section_row_inside_a_table_goes_into_the_path(task_rows: dict[str, Chunk]) -> None:
    assert task_rows["3"].section == (
        "附件",
        "赣州蓉江新区2023年巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作任务清单",
        "一、巩固脱贫攻坚成果基础，坚决守牢底线任务",
    )
    assert not any("一、巩固脱贫攻坚成果基础" in c.text for c in task_rows.values())


def test_responsible_column_fills_responsible(task_rows: dict[str, Chunk]) -> None:
    assert task_rows["14"].responsible == "区社管局、区医保分中心，各镇（管理处）"


def test_row_shifted_right_is_realigned(task_rows: dict[str, Chunk]) -> None:
    row = task_rows["15"]
    assert "任务要求：按要求落实特殊群体的城乡居民养老保险代缴政策。" in row.text
    assert "完成时限：全年" in row.text
    assert row.responsible == "区社管局、区医保分中心，各镇（管理处）"


def test_separator_empty_and_cut_off_rows(task_rows: dict[str, Chunk]) -> None:
    assert set(task_rows) == {"1", "2", "3", "14", "15", "16", "17"}  # "| 36 | | |" dropped
    assert "---" not in "".join(c.text for c in task_rows.values())
    assert task_rows["17"].responsible == "区财政局"  # no closing "|" on that line
    assert "工作事项：8.强化衔接资金项目管理" in task_rows["17"].text


TOP_OF_PAGE = """\
| 序号 | 工作事项 | 任务要求 | 完成时限 | 责任单位 |
|----|----|----|----|----|
| 18 | 9. 强化项目后续资产管理 | 开展扶贫项目资产确权登记。 | 全年 | 区财政局 |
| 19 | | 完善扶贫项目资产后续管理机制。 | 全年 | 区财政局 |

| 序号 | 工作事项 | 任务要求 | 完成时限 | 责任单位 |
|----|----|----|----|----|
| 20 | | 逐步加大财政资金投入，优先安排产业类项目。 | 全年 | 区财政局 |
| 21 | | 每季度至少开展1次小额信贷需求摸底。 | 全年 | 区农办 |
| 22 | 10. 推进产业帮扶提质增效 | 结合实际进一步优化产业奖补政策。 | 全年 | 区农办 |
| 23 | | 加大龙头企业带动。 | 全年 | 区农办 |

| 序号 | 工作事项 | 任务要求 | 完成时限 | 责任单位 |
|----|----|----|----|----|
| 37 | | 持续完善生活垃圾收运处置体系。 | 全年 | 区住建局 |
| 38 | 14. 深化农村人居环境整治 | 完成17个新农村建设点整治任务。 | 全年 | 区农办 |
| 39 | 提升 | 完成356个户厕问题整改。 | 全年 | 区农办 |
| 40 | | 全面开展农村黑臭水体排查和整治。 | 全年 | 区生态环境分局 |
| 41 | 15. 完善乡村基础设施 | 持续实施“四好”农村路网提升工程。 | 全年 | 区经发局 |
"""


def _rows_of(text: str) -> dict[str, str]:
    chunks = chunk_document(make_doc(text))
    return {c.extra["row_no"]: c.text for c in chunks if c.kind == ChunkKind.TABLE_ROW}


def test_rows_at_the_top_of_a_page_take_the_label_printed_below_them() -> None:
    rows = _rows_of(TOP_OF_PAGE)
    assert "工作事项：9.强化项目后续资产管理" in rows["19"]  # from the row above
    for row in ("20", "21", "22", "23"):  # not 9.: a new page, and 10. is printed in row 22
        assert "工作事项：10.推进产业帮扶提质增效" in rows[row], row


def test_a_label_wrapped_over_two_rows_is_one_label() -> None:
    rows = _rows_of(TOP_OF_PAGE)
    for row in ("37", "38", "39", "40"):
        assert "工作事项：14.深化农村人居环境整治提升；" in rows[row], row
    assert "工作事项：15.完善乡村基础设施" in rows["41"]
    assert "工作事项：提升" not in "".join(rows.values())


def test_merged_cells_do_not_cross_a_repeated_header() -> None:
    text = TASK_LIST.replace("| 16 | 8. 强化衔接资金项目管理 |", "| 16 | |")
    rows = [c for c in chunk_document(make_doc(text)) if c.kind == ChunkKind.TABLE_ROW]
    row16 = next(c for c in rows if c.extra.get("row_no") == "16")
    assert "工作事项" not in row16.text


def test_long_item_is_split_at_sentence_ends_with_path_repeated() -> None:
    chunks = [c for c in chunk_document(make_doc(LONG_ITEM)) if c.kind == ChunkKind.ITEM]
    assert len(chunks) >= 2
    assert all(len(c.text) <= 360 for c in chunks[:-1])
    assert {c.section for c in chunks} == {
        ("（一）聚焦守底线，夯实巩固成果工作基础", "1. 抓牢防返贫动态监测帮扶")
    }
    assert all(c.responsible.startswith("县乡村振兴局、县农业农村局") for c in chunks)
    assert all(c.text.endswith(("。", "〕")) for c in chunks)
    assert chunks[-1].text.endswith("各乡（镇）〕")
    assert [c.extra["part"] for c in chunks] == [
        f"{i}/{len(chunks)}" for i in range(1, len(chunks) + 1)
    ]
    joined = "".join(c.text for c in chunks)
    assert "用好省防止返贫监测系统和12317" in joined  # the page break was repaired
    only(chunks, "每季度对未消除风险的对象开展1次帮扶措施“回头看”。")


def test_chunk_ids_are_stable_and_positional() -> None:
    doc = make_doc(PROVINCIAL + "\n" + INDICATORS)
    first = chunk_document(doc)
    second = chunk_document(doc)
    assert first == second
    assert [c.extra for c in first] == [c.extra for c in second]
    assert [c.position for c in first] == list(range(len(first)))
    assert [c.chunk_id for c in first] == [
        f"{doc.content_hash[:12]}-{i:04d}" for i in range(len(first))
    ]
    assert len({c.chunk_id for c in first}) == len(first)


def test_numbered_list_without_running_text_is_grouped() -> None:
    text = """附件 2

2023 年度拟出台重要文件、举办会议活动和开展课题研究清单

一、拟出台的重要文件

1. 关于进一步健全完善帮扶资金项目联农带农机制的实施细则
2. 江西省健全防止返贫动态监测和帮扶机制工作指南（试行）（修订）
3. 关于推动 800 人以上易地扶贫搬迁安置社区进一步融入新型城镇化提升发展质量的指导意见
"""
    chunks = chunk_document(make_doc(text))
    assert len(chunks) == 1
    assert chunks[0].kind == ChunkKind.PARAGRAPH
    assert chunks[0].text.count("\n") == 2
    assert chunks[0].section == (
        "附件2",
        "2023年度拟出台重要文件、举办会议活动和开展课题研究清单",
        "一、拟出台的重要文件",
    )


def test_out_of_place_section_is_marked_suspect() -> None:
    text = """三、拟开展的课题研究

1. 加强联农带农利益联结机制建设全面推进乡村振兴研究

2. 推动我省乡村振兴工匠培育政策研究

（一）健全完善农村基层组织建设机制。健全完善农村基层组织建设机制，是加强农村基层组织建设的制度保障。
"""
    chunks = chunk_document(make_doc(text))
    suspect = [c for c in chunks if c.extra.get("suspect") == "out_of_place"]
    assert len(suspect) == 1
    assert suspect[0].text.startswith("（一）健全完善农村基层组织建设机制")
    assert suspect[0].section == ("（一）健全完善农村基层组织建设机制",)


def test_level2_heading_with_running_text_is_an_item_not_suspect() -> None:
    text = """三、保障措施

（一）落实落细工作责任。充分发挥区巩固拓展脱贫攻坚成果同乡村振兴有效衔接领导小组办公室牵头抓总作用。〔责任单位：区农办（乡村振兴局）、巩固拓展脱贫攻坚成果同乡村振兴有效衔接领导小组成员单位，各镇（管理处）〕
"""
    (chunk,) = chunk_document(make_doc(text))
    assert chunk.kind == ChunkKind.ITEM
    assert chunk.section == ("三、保障措施", "（一）落实落细工作责任")
    assert chunk.responsible.startswith("区农办（乡村振兴局）、")
    assert "suspect" not in chunk.extra


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("做好资料存档。（责任单位：省乡村振兴局）", "省乡村振兴局"),
        (
            "确保真管用。〔责任单位：区农办（乡村振兴局）、区妇联，各镇（管理处）〕",
            "区农办（乡村振兴局）、区妇联，各镇（管理处）",
        ),
        (
            "每半年公示1次收支情况。〔责任单位：区农办（乡村振兴局），各镇（管理处）】",
            "区农办（乡村振兴局），各镇（管理处）",
        ),
        ("制定本行动方案。(责任单位:省人社厅、省税务局)", "省人社厅、省税务局"),
        ("没有责任单位的段落。", ""),
    ],
)
def test_split_responsible(text: str, units: str) -> None:
    body, found = split_responsible(text)
    assert found == units
    if units:
        assert body.endswith("。")


def test_sentences_are_not_split_inside_quotes_or_brackets() -> None:
    text = "推动控辍保学从“动态清零”转向“常态清零”。（含丧失劳动力；整户）其余。“应保尽保。”再次。"
    assert split_sentences_outside_brackets(text) == [
        "推动控辍保学从“动态清零”转向“常态清零”。",
        "（含丧失劳动力；整户）其余。",
        "“应保尽保。”",
        "再次。",
    ]


def test_a_single_overlong_sentence_is_cut() -> None:
    sentence = "，".join(["加强衔接资金项目日常跟踪调度"] * 60) + "。"
    parts = pack_sentences([sentence], 100)
    assert len(parts) > 1
    assert all(len(p) <= 100 for p in parts)
    assert "".join(parts) == sentence


# --- the real knowledge base -----------------------------------------------------------------


@pytest.fixture(scope="module")
def knowledge() -> dict[str, list[Chunk]]:
    catalog = read_catalog(REPO_KNOWLEDGE / "catalog.toml")
    documents = [load_document(p, catalog) for p in sorted(REPO_KNOWLEDGE.glob("*.txt"))]
    assert len(documents) == 5
    return {d.meta.doc_id: chunk_document(d) for d in documents}


def test_every_document_chunks_sensibly(knowledge: dict[str, list[Chunk]]) -> None:
    for doc_id, chunks in knowledge.items():
        assert chunks, doc_id
        assert chunks[0].kind == ChunkKind.HEADING, doc_id
        assert all(c.text.strip() for c in chunks), doc_id
        assert all(c.doc_id == doc_id for c in chunks)
        long = [c for c in chunks if len(c.text) > 2 * 360 + 200]
        assert not long, doc_id
        assert not any("**" in c.text or "$" in c.text for c in chunks), doc_id


def test_known_facts_land_in_one_chunk(knowledge: dict[str, list[Chunk]]) -> None:
    item = only(knowledge["jiangxi-2023-work-points"], "一般不超过15天")
    assert "省乡村振兴局" in item.responsible
    assert item.section[-1] == "1. 强化动态监测识别"

    row = only(knowledge["jiangxi-2023-work-points"], "就业规模为130.9万人")
    assert "目标值：≥130.9万人" in row.text

    xinfeng = only(knowledge["xinfeng-2024-work-points"], "每季度对未消除风险的对象开展1次")
    assert xinfeng.responsible.startswith("县乡村振兴局")

    subsidy = only(knowledge["xinfeng-2024-work-points"], "村委会公示7天")
    assert "5月、8月中下旬两批次" in subsidy.text

    header = knowledge["fuliang-2023-seven-actions"][0]
    assert "2023年4月26日印发" in header.text
    assert "浮梁县2023年巩固拓展脱贫攻坚成果“七大专项行动”实施方案" in header.text

    fifteen_days = only(knowledge["fuliang-2023-seven-actions"], "一般不超过15日")
    assert fifteen_days.responsible.startswith("县乡村振兴局")


def test_only_the_pasted_paragraph_is_suspect(knowledge: dict[str, list[Chunk]]) -> None:
    suspects = [c for chunks in knowledge.values() for c in chunks if c.extra.get("suspect")]
    assert len(suspects) == 1
    assert suspects[0].doc_id == "jiangxi-2023-work-points"
    assert "农村基层组织建设" in suspects[0].text


def test_items_carry_their_responsible_units(knowledge: dict[str, list[Chunk]]) -> None:
    items = [
        c
        for doc_id in (
            "jiangxi-2023-work-points",
            "rongjiang-2023-work-points",
            "xinfeng-2024-work-points",
        )
        for c in knowledge[doc_id]
        if c.kind == ChunkKind.ITEM and "suspect" not in c.extra
    ]
    assert items
    assert all(c.responsible for c in items)
    assert not any("责任单位" in c.responsible for c in items)


def test_articles_are_items_whose_text_is_the_body() -> None:
    text = (
        "一、总则\n\n第一条 为规范村级光伏帮扶电站管理，制定本办法。\n\n第二条 本办法适用于全县。"
    )
    chunks = chunk_document(make_doc(text))
    assert [c.section for c in chunks] == [("一、总则", "第一条"), ("一、总则", "第二条")]
    assert all(c.kind == ChunkKind.ITEM for c in chunks)
    assert chunks[0].text == "第一条为规范村级光伏帮扶电站管理，制定本办法。"


def test_plain_text_without_structure_is_paragraphs() -> None:
    chunks = chunk_document(make_doc("Village solar stations. They pay out yearly."))
    assert [c.kind for c in chunks] == [ChunkKind.PARAGRAPH]
    assert chunk_document(make_doc("  \n\n")) == []
