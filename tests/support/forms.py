"""Answers to the two intake forms, typed the way a user types them (accepted as they are)."""

from __future__ import annotations

from cadrebot.handlers.forms.validators import id_check_char

# The worked example of GB 11643-1999 (check character X) and one built with the algorithm.
VALID_ID_X = "11010519491231002X"
VALID_ID = "36012119900101123" + id_check_char("36012119900101123")

# 防返贫风险自主申报 (/report), every field in order; the summary follows the last one.
RISK_TYPED = (
    "张三",
    VALID_ID,
    "13812345678",
    "大塘埠镇",
    "长岭村",
    "4",
    "监测户",
    "1,4",
    "今年3月父亲住院做手术，花费较大，家里收入减少。",
    "3000",
    "是",
)
# 产业奖补申报 (/subsidy), every field in order; the summary follows the last one.
SUBSIDY_TYPED = (
    "脱贫户",
    "李四",
    VALID_ID,
    "13912345678",
    "大塘埠镇",
    "长岭村",
    "种植",
    "脐橙",
    "5",
    "亩",
    "20000",
    "否",
)
