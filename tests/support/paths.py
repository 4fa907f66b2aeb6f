"""Where things are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPO_KNOWLEDGE = REPO / "knowledge"
"""The real knowledge base the bot ships with."""
DEV_SET = REPO / "eval" / "dev.jsonl"
TINY_KNOWLEDGE = Path(__file__).resolve().parent / "data" / "tiny_knowledge"
"""One document: the opening items of 赣党农字〔2023〕2号 (quick to index)."""
