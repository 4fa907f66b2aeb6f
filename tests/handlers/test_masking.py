from __future__ import annotations

import unicodedata

import pytest

from cadrebot.handlers.masking import mask_id_number, mask_mobile, mask_sensitive


def test_mask_id_number_keeps_region_prefix_and_last_four() -> None:
    assert mask_id_number("360121199001011234") == "3601**********1234"
    assert mask_id_number("11010519491231002X") == "1101**********002X"


def test_mask_id_number_masks_short_values_completely() -> None:
    assert mask_id_number("1234567") == "*******"


def test_mask_mobile() -> None:
    assert mask_mobile("13812345678") == "138****5678"


def test_mask_sensitive_masks_ids_inside_text() -> None:
    text = "身份证360121199001011234，旧证360121900101123，手机13812345678。"
    masked = mask_sensitive(text)
    assert "360121199001011234" not in masked
    assert "3601**********1234" in masked
    assert "3601*******1123" in masked
    assert "138****5678" in masked
    assert masked.startswith("身份证")
    assert masked.endswith("。")


def test_mask_sensitive_can_keep_phone_numbers() -> None:
    masked = mask_sensitive("11010519491231002x 13812345678", mask_phones=False)
    assert masked == "1101**********002x 13812345678"


def test_mask_sensitive_leaves_other_digit_runs_alone() -> None:
    # A 19-digit bank card and a 4-digit year are not ID numbers.
    assert mask_sensitive("卡号6222021234567890123，2026年") == "卡号6222021234567890123，2026年"


# --------------------------------------------------------------------------- separators


SPACED_IDS = [
    "3607 0219 9001 0112 32",
    "3607-0219-9001-011232",
    "ID360702199001011232",
    "身份证：36070219900101123X",
    "３６０７０２１９９００１０１１２３２",
    "360702\u200b199001011232",  # a zero-width space in the middle
    "3607 0219 9001 0112 3x",
    "360 702 199 001 011 232",
    "36 07 02 19 90 01 01 12 32",
]


@pytest.mark.parametrize("text", SPACED_IDS)
def test_mask_sensitive_masks_ids_whatever_separates_the_digits(text: str) -> None:
    masked = mask_sensitive(f"我的身份证是{text}，谢谢")
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", masked) if ch.isdigit())
    assert "19900101" not in digits
    assert "3607**********" in masked
    assert masked.startswith("我的身份证是") and masked.endswith("，谢谢")


def test_a_spaced_id_is_masked_in_the_usual_format() -> None:
    assert mask_sensitive("3607 0219 9001 0112 32") == "3607**********1232"
    assert mask_sensitive("身份证：36070219900101123X") == "身份证：3607**********123X"
    assert mask_sensitive("ID360702199001011232") == "ID3607**********1232"


@pytest.mark.parametrize(
    "text",
    [
        "138 1234 5678",
        "138-1234-5678",
        "+86 13812345678",
        "8613812345678",
        "１３８１２３４５６７８",
    ],
)
def test_mask_sensitive_masks_phones_whatever_separates_the_digits(text: str) -> None:
    masked = mask_sensitive(f"电话{text}。")
    assert "138****5678" in masked
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", masked) if ch.isdigit())
    assert "1234" not in digits


def test_phones_can_be_kept_whatever_separates_the_digits() -> None:
    assert mask_sensitive("138 1234 5678", mask_phones=False) == "138 1234 5678"


def test_a_phone_after_another_number_is_still_masked() -> None:
    assert mask_sensitive("家里4口人 13812345678") == "家里4口人 138****5678"
    assert mask_sensitive("4 13812345678") == "4 138****5678"


@pytest.mark.parametrize(
    "text",
    [
        "补助3000元，2026-05-12到账",
        "案件FX-2026-000001已受理",
        "依据赣党农字〔2023〕2号第1条",
        "2026年5月12日 3000 5000 2000",
        "1500 2000 3000 200 元",
        "卡号6222021234567890123",
        "2026-05-12 2026-05-13 2026-05-14",
        "座机0797-1234567",
        "共 12 件，第 1-10 件",
    ],
)
def test_ordinary_numbers_are_not_masked(text: str) -> None:
    assert mask_sensitive(text) == text


def test_a_check_character_written_apart_is_part_of_the_id() -> None:
    assert mask_sensitive("，3 6070219510102004 X，") == "，3607**********004X，"
    assert mask_sensitive("44528120030104064Xa") == "4452**********064Xa"
