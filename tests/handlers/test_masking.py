from __future__ import annotations

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
