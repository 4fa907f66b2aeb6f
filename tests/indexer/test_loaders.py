"""Reading .txt/.md/.docx/.pdf files into raw text."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from cadrebot.indexer.loaders import (
    SUPPORTED_SUFFIXES,
    DocumentLoadError,
    UnsupportedDocumentError,
    load_text,
)

ITEM = "监测对象从发现返贫致贫风险线索之日起，到完成识别认定一般不超过15天。"


def test_supported_suffixes() -> None:
    assert frozenset({".txt", ".md", ".docx", ".pdf"}) == SUPPORTED_SUFFIXES


def test_utf8_text_with_and_without_bom(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text(ITEM, encoding="utf-8")
    bom = tmp_path / "bom.md"
    bom.write_bytes(b"\xef\xbb\xbf" + ITEM.encode("utf-8"))
    assert load_text(plain) == ITEM
    assert load_text(bom) == ITEM


def test_gb18030_text_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "gbk.txt"
    path.write_bytes(ITEM.encode("gb18030"))
    assert load_text(path) == ITEM


def test_unsupported_suffix_is_refused_in_chinese(tmp_path: Path) -> None:
    path = tmp_path / "表格.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(UnsupportedDocumentError) as caught:
        load_text(path)
    message = str(caught.value)
    assert "表格.xlsx" in message
    assert "不支持" in message
    for suffix in (".txt", ".md", ".docx", ".pdf"):
        assert suffix in message
    assert isinstance(caught.value, ValueError)


def test_suffix_check_ignores_case(tmp_path: Path) -> None:
    path = tmp_path / "NOTICE.TXT"
    path.write_text(ITEM, encoding="utf-8")
    assert load_text(path) == ITEM


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("一、坚决守底线，确保不发生规模性返贫")
    document.add_paragraph("1. 强化动态监测识别。" + ITEM)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(
        table.rows,
        [
            ("序号", "工作指标", "目标值"),
            ("8", "全省脱贫人口和监测对象就业规模", "≥130.9万人"),
            ("9", "", "≥6.2万人"),
        ],
        strict=True,
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("附件 2")
    path = tmp_path / "要点.docx"
    document.save(str(path))

    lines = [line for line in load_text(path).split("\n") if line]
    assert lines == [
        "一、坚决守底线，确保不发生规模性返贫",
        "1. 强化动态监测识别。" + ITEM,
        "序号\t工作指标\t目标值",
        "8\t全省脱贫人口和监测对象就业规模\t≥130.9万人",
        "9\t\t≥6.2万人",
        "附件 2",
    ]


def test_docx_horizontally_merged_cell_appears_once(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 2))
    merged.text = "一、巩固脱贫攻坚成果基础"
    for cell, value in zip(table.rows[1].cells, ("1", "全年", "区农办"), strict=True):
        cell.text = value
    path = tmp_path / "merged.docx"
    document.save(str(path))
    assert load_text(path).split("\n") == ["一、巩固脱贫攻坚成果基础", "1\t全年\t区农办"]


def test_broken_docx_gives_a_chinese_error(tmp_path: Path) -> None:
    path = tmp_path / "坏文件.docx"
    path.write_bytes(b"not a zip file")
    with pytest.raises(DocumentLoadError, match=r"坏文件\.docx"):
        load_text(path)


def _write_pdf(path: Path, lines: list[str]) -> None:
    # STSong-Light is one of reportlab's built-in CJK CID fonts (no font file needed).
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path))
    pdf.setFont("STSong-Light", 12)
    for index, line in enumerate(lines):
        pdf.drawString(72, 760 - 20 * index, line)
    pdf.showPage()
    pdf.setFont("STSong-Light", 12)
    pdf.drawString(72, 760, "（责任单位：省乡村振兴局）")
    pdf.save()


def test_pdf_chinese_text_is_extracted(tmp_path: Path) -> None:
    path = tmp_path / "通知.pdf"
    _write_pdf(path, ["1. 强化动态监测识别。", ITEM])
    text = load_text(path)
    assert "强化动态监测识别" in text
    assert "一般不超过15天" in text
    assert text.index("一般不超过15天") < text.index("省乡村振兴局")  # page order kept


def test_pdf_without_text_gives_a_chinese_error(tmp_path: Path) -> None:
    path = tmp_path / "扫描件.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.rect(72, 72, 100, 100)
    pdf.save()
    with pytest.raises(DocumentLoadError, match="扫描件"):
        load_text(path)


def test_broken_pdf_gives_a_chinese_error(tmp_path: Path) -> None:
    path = tmp_path / "坏.pdf"
    path.write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(DocumentLoadError, match=r"坏\.pdf"):
        load_text(path)
