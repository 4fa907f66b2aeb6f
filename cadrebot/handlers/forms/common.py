"""Fields both intake forms ask in the same way."""

from __future__ import annotations

from cadrebot.handlers.forms.fields import FieldKind, FieldSpec

HOUSEHOLD_TYPES = ("脱贫户", "监测户", "一般农户")

NAME = FieldSpec(
    name="name",
    label="姓名",
    prompt="请输入申报人姓名。",
    kind=FieldKind.PERSON_NAME,
    min_length=2,  # shown in the hint; validators.parse_person_name checks 2-20 itself
    max_length=20,
)
ID_NUMBER = FieldSpec(
    name="id_number",
    label="身份证号",
    prompt="请输入申报人的18位居民身份证号码。",
    kind=FieldKind.ID_CARD,
    help="身份证号用于核对户籍和帮扶信息，只有经办干部可以查看，对外显示时会隐去中间部分。",
)
MOBILE = FieldSpec(
    name="mobile",
    label="手机号",
    prompt="请输入联系手机号（11位），方便干部与您联系。",
    kind=FieldKind.PHONE,
)
TOWNSHIP = FieldSpec(
    name="township",
    label="乡镇",
    prompt="请输入您所在的乡（镇）或街道，例如：大塘埠镇。",
    kind=FieldKind.TOWNSHIP,
    max_length=30,
)
VILLAGE = FieldSpec(
    name="village",
    label="村",
    prompt="请输入您所在的村（社区），例如：长岭村。",
    kind=FieldKind.VILLAGE,
    max_length=30,
)
