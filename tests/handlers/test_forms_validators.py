from __future__ import annotations

from datetime import date

import pytest

from cadrebot.handlers.forms import validators as v
from cadrebot.handlers.forms.validators import InvalidAnswer
from tests.support.forms import VALID_ID, VALID_ID_X

TODAY = date(2026, 5, 12)


def reason(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidAnswer) as info:
        call(*args, **kwargs)
    return info.value.reason


class TestIdNumber:
    def test_valid_numbers(self) -> None:
        assert v.parse_id_number(VALID_ID_X, today=TODAY) == VALID_ID_X
        assert v.parse_id_number(VALID_ID_X.lower(), today=TODAY) == VALID_ID_X
        assert v.parse_id_number(" 360121 19900101 1239 ", today=TODAY) == VALID_ID
        # full-width digits from a Chinese input method
        assert v.parse_id_number("３６０１２１１９９００１０１１２３９", today=TODAY) == VALID_ID

    def test_wrong_check_digit(self) -> None:
        assert "校验位" in reason(v.parse_id_number, "360121199001011234", today=TODAY)

    def test_wrong_length(self) -> None:
        assert "18位" in reason(v.parse_id_number, "36012119900101123", today=TODAY)
        assert "17位" in reason(v.parse_id_number, "36012119900101123", today=TODAY)

    def test_letters(self) -> None:
        assert "数字" in reason(v.parse_id_number, "3601211990010112A9", today=TODAY)

    def test_impossible_birth_date(self) -> None:
        body = "36012119900231123"  # 31 February
        assert "出生日期" in reason(v.parse_id_number, body + v.id_check_char(body), today=TODAY)

    def test_birth_date_in_future(self) -> None:
        body = "36012120300101123"
        assert "出生日期" in reason(v.parse_id_number, body + v.id_check_char(body), today=TODAY)


class TestMobile:
    @pytest.mark.parametrize("raw", ["13812345678", "138 1234 5678", "+86 138-1234-5678"])
    def test_valid(self, raw: str) -> None:
        assert v.parse_mobile(raw) == "13812345678"

    def test_wrong_length(self) -> None:
        assert "11位" in reason(v.parse_mobile, "1381234567")

    def test_wrong_prefix(self) -> None:
        assert "13到19" in reason(v.parse_mobile, "12812345678")

    def test_not_digits(self) -> None:
        assert "数字" in reason(v.parse_mobile, "138abc45678")


class TestNumber:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("5", 5), ("5人", 5), ("五口人", 5), ("十二", 12), ("1,200元", 1200), ("1.5万", 15000),
         ("三千", 3000), ("两万五千", 25000)],
    )  # fmt: skip
    def test_forms_people_type(self, raw: str, expected: int) -> None:
        assert v.parse_number(raw, min_value=0, max_value=100000) == expected

    def test_decimals(self) -> None:
        assert v.parse_number("1234.5", decimals=2) == 1234.5
        assert "整数" in reason(v.parse_number, "2.5", decimals=0)
        assert "2位小数" in reason(v.parse_number, "2.555", decimals=2)

    def test_out_of_range(self) -> None:
        message = reason(v.parse_number, "21", min_value=1, max_value=20)
        assert "1到20" in message
        assert "1到20" in reason(v.parse_number, "0", min_value=1, max_value=20)

    def test_not_a_number(self) -> None:
        assert "数字" in reason(v.parse_number, "很多")


class TestChoices:
    CHOICES = ("脱贫户", "监测户", "一般农户")

    def test_by_number_text_or_unique_fragment(self) -> None:
        assert v.parse_choice("2", self.CHOICES) == "监测户"
        assert v.parse_choice("监测户", self.CHOICES) == "监测户"
        assert v.parse_choice("监测", self.CHOICES) == "监测户"

    def test_unknown(self) -> None:
        assert "1到3" in reason(v.parse_choice, "4", self.CHOICES)
        assert "“贫困户”" in reason(v.parse_choice, "贫困户", self.CHOICES)

    def test_multi(self) -> None:
        risks = ("因病", "因残", "因学", "因灾", "因意外")
        assert v.parse_multi_choice("1,3,5", risks) == ["因病", "因学", "因意外"]
        assert v.parse_multi_choice("5 1", risks) == ["因病", "因意外"]
        assert v.parse_multi_choice("因灾、因病", risks) == ["因病", "因灾"]
        assert v.parse_multi_choice("135", risks) == ["因病", "因学", "因意外"]
        assert "“因穷”" in reason(v.parse_multi_choice, "因病、因穷", risks)


class TestYesNoTextDate:
    def test_yes_no(self) -> None:
        assert v.parse_yes_no("是的") is True
        assert v.parse_yes_no("不同意") is False
        assert v.parse_yes_no("2") is False
        assert "是" in reason(v.parse_yes_no, "也许")

    def test_text(self) -> None:
        assert v.parse_text("  张三 ") == "张三"
        assert "500字" in reason(v.parse_text, "字" * 501, max_length=500)
        assert "不能为空" in reason(v.parse_text, "   ")

    def test_date(self) -> None:
        assert v.parse_date("2026年5月1日", today=TODAY) == date(2026, 5, 1)
        assert v.parse_date("5月3号", today=TODAY) == date(2026, 5, 3)
        assert v.parse_date("昨天", today=TODAY) == date(2026, 5, 11)
        assert "有效" in reason(v.parse_date, "2026-02-30", today=TODAY)
        assert "晚于" in reason(v.parse_date, "2026-06-01", today=TODAY, not_after=TODAY)
