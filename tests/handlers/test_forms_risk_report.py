from __future__ import annotations

from datetime import date

from cadrebot.handlers.forms import FormEngine, StepOutcome, risk_report
from cadrebot.handlers.ports import Case
from tests.support.clock import at
from tests.support.forms import RISK_TYPED, VALID_ID

from .formdriver import answer_all

NOW = at(2026, 5, 12, 9, 30)


def filed(engine: FormEngine) -> Case:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    result = engine.step(state, "确认提交", NOW)
    assert result.outcome is StepOutcome.SUBMIT
    new = risk_report.FORM.file_case(result.answers, 7, NOW)
    return Case(
        id=1,
        number="FX-2026-000123",
        case_type=new.case_type,
        status=new.status,
        fields=new.fields,
        submitter_id=new.submitter_id,
        township=new.township,
        village=new.village,
        submitted_at=new.submitted_at,
        updated_at=new.submitted_at,
        due_dates=new.due_dates,
    )


def test_end_to_end_files_an_accepted_case_due_in_15_days(engine: FormEngine) -> None:
    case = filed(engine)
    assert case.case_type == "risk_report"
    assert case.status == "已受理"
    assert case.submitter_id == 7
    assert (case.township, case.village) == ("大塘埠镇", "长岭村")
    assert case.due_dates == {"识别认定": date(2026, 5, 27)}
    assert case.fields == {
        "name": "张三",
        "id_number": VALID_ID,
        "mobile": "13812345678",
        "township": "大塘埠镇",
        "village": "长岭村",
        "household_size": 4,
        "household_type": "监测户",
        "risk_types": ["因病", "因灾"],
        "description": "今年3月父亲住院做手术，花费较大，家里收入减少。",
        "estimated_loss": 3000,
        "consent": True,
    }


def test_new_case_uses_the_fx_prefix(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    new = risk_report.FORM.file_case(state.answers, 1, NOW)
    assert new.number_prefix == "FX"


def test_confirmation_gives_number_next_steps_rule_and_hotline(engine: FormEngine) -> None:
    text = risk_report.FORM.confirmation(filed(engine))
    assert "FX-2026-000123" in text
    assert "入户核实 → 评议公示 → 乡镇审核 → 县级审定" in text
    assert "赣党农字〔2023〕2号" in text
    assert "第1条" in text
    assert "2026年05月27日" in text
    assert "12317" in text


def test_due_date_crosses_month_end() -> None:
    new = risk_report.FORM.file_case({"township": "t", "village": "v"}, 1, at(2026, 12, 25))
    assert new.due_dates["识别认定"] == date(2027, 1, 9)
