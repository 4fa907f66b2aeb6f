"""The knowledge folder as uploads reach it: the same document under a second name is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadrebot.handlers.ports import KnowledgeError
from cadrebot.indexer.folder import DocumentFolder

NOTICE = "信丰县产业奖补办法\n\n一、脱贫户和监测户于5月、8月中下旬两批次提出奖补项目申请。\n"


def test_the_same_content_under_another_name_is_not_stored_twice(tmp_path: Path) -> None:
    (tmp_path / "knowledge").mkdir()
    folder = DocumentFolder(tmp_path / "knowledge", max_upload_bytes=1_000_000)
    upload = tmp_path / "upload"
    upload.write_text(NOTICE, encoding="utf-8")
    folder.store_upload("办法.txt", upload)
    with pytest.raises(KnowledgeError, match=r"办法\.txt"):
        folder.store_upload("办法-副本.txt", upload)
    assert folder.document_names() == ["办法.txt"]
    # Replacing a document by a new version under its own name stays possible.
    upload.write_text(NOTICE + "二、村委会公示7天。\n", encoding="utf-8")
    assert folder.store_upload("办法.txt", upload).replaced
