"""Document metadata from catalog.toml and from the notice header."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cadrebot.indexer.catalog import (
    CatalogError,
    load_document,
    metadata_from_header,
    read_catalog,
)
from cadrebot.indexer.types import DocumentMeta
from tests.support.paths import REPO_KNOWLEDGE

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    """A fragment copied verbatim from a seed document (artefacts included)."""
    return (FIXTURES / name).read_text(encoding="utf-8")


# Headers copied from the seed documents (first lines only).
PROVINCIAL_HEADER = fixture("provincial_header.txt")

INCOME_HEADER = fixture("income_header.txt")

RONGJIANG_HEADER = fixture("rongjiang_header.txt")

XINFENG_HEADER = fixture("xinfeng_header.txt")

FULIANG_HEADER = fixture("fuliang_header.txt")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            PROVINCIAL_HEADER,
            DocumentMeta(
                doc_id="a",
                title="全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接2023年工作要点",
                issuer="中共江西省委农村工作领导小组",
                doc_number="赣党农字〔2023〕2号",
                date="2023",
                level="省",
                region="江西省",
                source="a.txt",
            ),
        ),
        (
            INCOME_HEADER,
            DocumentMeta(
                doc_id="a",
                title="江西省脱贫人口和防止返贫监测对象增收三年行动方案（2023—2025年）",
                issuer="中共江西省委农村工作（实施乡村振兴战略工作）领导小组",
                doc_number="赣党农字〔2023〕10号",
                date="2023",
                level="省",
                region="江西省",
                source="a.txt",
            ),
        ),
        (
            RONGJIANG_HEADER,
            DocumentMeta(
                doc_id="a",
                title="赣州蓉江新区2023年巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作要点",
                issuer="赣州蓉江新区巩固拓展脱贫攻坚成果同乡村振兴有效衔接领导小组",
                doc_number="赣蓉振领字〔2023〕1号",
                date="2023-03-15",
                level="区",
                region="赣州蓉江新区",
                source="a.txt",
            ),
        ),
        (
            XINFENG_HEADER,
            DocumentMeta(
                doc_id="a",
                title="信丰县2024年巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作要点",
                issuer="信丰县巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作领导小组",
                doc_number="信巩字〔2024〕1号",  # not the 信发〔2024〕2号 cited in the body
                date="2024-03-25",
                level="县",
                region="信丰县",
                source="a.txt",
            ),
        ),
        (
            FULIANG_HEADER,
            DocumentMeta(
                doc_id="a",
                title="浮梁县2023年巩固拓展脱贫攻坚成果“七大专项行动”实施方案",
                issuer="浮梁县巩固拓展脱贫攻坚成果工作领导小组",
                doc_number="",
                date="2023-04-26",
                level="县",
                region="浮梁县",
                source="a.txt",
            ),
        ),
    ],
    ids=["provincial", "income", "rongjiang", "xinfeng", "fuliang"],
)
def test_metadata_from_real_headers(header: str, expected: DocumentMeta) -> None:
    assert metadata_from_header(header, "a.txt") == expected


def test_title_falls_back_to_the_first_title_line_then_the_file_name() -> None:
    titled = metadata_from_header(
        "村级光伏帮扶电站管理办法\n\n一、总则\n\n第一条 为规范管理。", "pv.md"
    )
    assert titled.title == "村级光伏帮扶电站管理办法"
    assert titled.doc_id == "pv"
    untitled = metadata_from_header("为规范村级光伏帮扶电站管理，制定本办法。", "pv-rules.txt")
    assert untitled.title == "pv-rules"
    assert untitled.doc_number == ""
    assert untitled.date == ""


def test_read_catalog_keys_entries_by_file_name(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        '["xinfeng.txt"]\ntitle = "信丰县工作要点"\ndate = 2024-03-25\nlevel = "县"\n\n'
        '["jiangxi.txt"]\ntitle = "全省工作要点"\ndate = 2023\n',
        encoding="utf-8",
    )
    catalog = read_catalog(path)
    assert set(catalog) == {"xinfeng.txt", "jiangxi.txt"}
    assert catalog["xinfeng.txt"] == DocumentMeta(
        doc_id="xinfeng",
        title="信丰县工作要点",
        date="2024-03-25",
        level="县",
        source="xinfeng.txt",
    )
    assert catalog["jiangxi.txt"].date == "2023"


def test_missing_catalog_is_empty(tmp_path: Path) -> None:
    assert read_catalog(tmp_path / "catalog.toml") == {}


def test_malformed_catalog_gives_a_chinese_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text('["a.txt"\ntitle = "x"\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="格式有误"):
        read_catalog(path)


def test_the_project_catalog_covers_every_document() -> None:
    catalog = read_catalog(REPO_KNOWLEDGE / "catalog.toml")
    assert set(catalog) == {p.name for p in REPO_KNOWLEDGE.glob("*.txt")}
    assert catalog["jiangxi-2023-work-points.txt"].doc_number == "赣党农字〔2023〕2号"


def test_catalog_entry_wins_and_header_fills_gaps(tmp_path: Path) -> None:
    path = tmp_path / "fuliang.txt"
    path.write_text(FULIANG_HEADER, encoding="utf-8")
    catalog = {
        "fuliang.txt": DocumentMeta(
            doc_id="fuliang", title="浮梁县七大专项行动实施方案", region="景德镇市浮梁县"
        )
    }
    document = load_document(path, catalog)
    assert document.meta.title == "浮梁县七大专项行动实施方案"  # from the catalog
    assert document.meta.region == "景德镇市浮梁县"  # from the catalog
    assert document.meta.date == "2023-04-26"  # from the header
    assert document.meta.issuer == "浮梁县巩固拓展脱贫攻坚成果工作领导小组"  # from the header
    assert document.meta.doc_id == "fuliang"
    assert document.meta.source == "fuliang.txt"
    assert document.text == FULIANG_HEADER  # raw, cleaned later by the chunker
    assert document.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_document_without_catalog_entry_uses_its_header(tmp_path: Path) -> None:
    path = tmp_path / "xinfeng-2024.txt"
    path.write_bytes(XINFENG_HEADER.encode("gb18030"))
    document = load_document(path, {})
    assert document.meta.doc_number == "信巩字〔2024〕1号"
    assert document.meta.doc_id == "xinfeng-2024"
    assert document.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
