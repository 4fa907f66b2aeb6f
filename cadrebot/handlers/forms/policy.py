"""Policy documents the forms and the case desk cite, and the rules taken from them."""

from __future__ import annotations

WORK_POINTS_2023 = (
    "《全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接2023年工作要点》（赣党农字〔2023〕2号）"
)
XINFENG_2024 = "《信丰县2024年巩固拓展脱贫攻坚成果同乡村振兴有效衔接工作要点》（信巩字〔2024〕1号）"

HOTLINE = "12317"

# 赣党农字〔2023〕2号 第1条: from the risk clue to completed identification, normally <= 15 days.
IDENTIFICATION_DAYS = 15
IDENTIFICATION_RULE = (
    f"{WORK_POINTS_2023}第1条：监测对象从发现返贫致贫风险线索之日起，"
    f"到完成识别认定一般不超过{IDENTIFICATION_DAYS}天。"
)

# 赣党农字〔2023〕2号 第2条: help plan within 10 days of county approval.
HELP_PLAN_DAYS = 10
HELP_PLAN_RULE = (
    f"{WORK_POINTS_2023}第2条：在县级批准新识别监测对象后{HELP_PLAN_DAYS}天内完成帮扶计划制定。"
)

# 赣党农字〔2023〕2号 第3条: conditions for marking the risk removed.
RISK_REMOVAL_RULE = (
    f"{WORK_POINTS_2023}第3条：收入稳定持续半年以上且超过当年监测范围、“三保障”及饮水安全"
    "持续巩固、返贫致贫风险稳定消除、帮扶措施全部落实并产生持续效果的，按程序标注风险消除。"
)

# 信巩字〔2024〕1号 第5条: 产业奖补 for 脱贫户 and 监测户, two rounds a year.
SUBSIDY_RULE = (
    f"{XINFENG_2024}第5条：脱贫户和监测户于5月、8月中下旬两批次提出奖补项目申请，"
    "村委会公示7天后报乡（镇）政府复核，县农业农村局于6月、9月中旬按不低于20%比例实地核实，"
    "6月底、9月底奖补资金拨付到位。"
)
SUBSIDY_PUBLICITY_DAYS = 7
