"""Stand-ins for the Q&A module (``ports.PolicyAnswerer``): no index, no model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FakeAnswer:
    """A ``ports.PolicyAnswer`` with the build it came from, as the real composer's have."""

    text: str
    found: bool = True
    chunk_ids: tuple[str, ...] = ()
    kb_version: str = "test-kb"
    suggestions: tuple[str, ...] = ()


class FakeAnswerer:
    """Answers every question with a canned, cited text and remembers what was asked."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def answer(self, question: str) -> FakeAnswer:
        self.questions.append(question)
        if "识别认定" in question:
            return FakeAnswer(
                "一般不超过15天。\n出处：《…2023年工作要点》（赣党农字〔2023〕2号）",
                True,
                ("c-0001",),
            )
        return FakeAnswer("抱歉，现有政策文件中没有找到相关规定。", False)
