"""Identity-card numbers are stored whole but never reach the logs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from cadrebot.handlers.ports import (
    CaseQuery,
    DialogPhase,
    DialogState,
    Exchange,
    ExchangeKind,
)
from cadrebot.storage import (
    SensitiveDataFilter,
    SqlUnitOfWorkFactory,
    install_sensitive_data_filter,
    make_engine,
    upgrade,
)
from tests.support.cases import ID_NUMBER, risk_case
from tests.support.clock import SHANGHAI, at

from .helpers import KEY

log = logging.getLogger("cadrebot.test")


def _run_a_whole_case_flow(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        factory = SqlUnitOfWorkFactory(engine, tz=SHANGHAI)
        with factory() as uow, uow.dialogs.locked(KEY):
            farmer = uow.users.get_or_create("telegram", "1001", "张三")
            state = uow.dialogs.save(
                DialogState(
                    key=KEY,
                    form_name="risk_report",
                    current_field=None,
                    phase=DialogPhase.SUMMARY,
                    answers={"身份证号": ID_NUMBER},
                    started_at=at(2026, 5, 6),
                    updated_at=at(2026, 5, 6),
                )
            )
            uow.commit()
            assert uow.dialogs.load(KEY) == state
            case = uow.cases.create(
                dataclasses.replace(
                    risk_case(farmer.id, at(2026, 5, 6)), due_dates={"识别认定": date(2026, 5, 21)}
                )
            )
            uow.dialogs.delete(KEY)
            uow.exchanges.record(
                Exchange(
                    channel="telegram",
                    chat_id="chat-1",
                    user_id=farmer.id,
                    at=at(2026, 5, 6),
                    inbound_text=f"我的身份证号是{ID_NUMBER}",
                    reply_text="已记录",
                    kind=ExchangeKind.FORM,
                )
            )
            uow.commit()
        with factory() as uow:
            uow.cases.transition(
                case.number,
                expected_status="已受理",
                to_status="已核实",
                actor_id=None,
                at=at(2026, 5, 7),
            )
            uow.commit()
            assert uow.cases.get(case.number) is not None
            assert uow.cases.list_cases(CaseQuery()).total == 1
            assert len(uow.cases.due_before(CaseQuery(), date(2026, 6, 1))) == 1
            assert uow.cases.get(case.number).fields["身份证号"] == ID_NUMBER  # type: ignore[union-attr]

        # A failing statement whose parameters contain the number: the error (and so any
        # log.exception of it) must not quote them.
        # PostgreSQL quotes the failing row (each value cut to ~64 bytes) in its error
        # detail, so the number goes first in the JSON to be sure it would be quoted.
        bad = dataclasses.replace(
            risk_case(farmer.id, at(2026, 5, 8)),
            case_type="unknown",
            fields={"身份证号": ID_NUMBER, "姓名": "张三"},
        )
        with factory() as uow, pytest.raises(IntegrityError) as failure:
            uow.cases.create(bad)
        assert ID_NUMBER not in str(failure.value)
        assert ID_NUMBER not in str(failure.value.orig)
        if engine.dialect.name == "postgresql":
            assert "3607**********461X" in str(failure.value)  # quoted, but masked
        log.error("filing failed", exc_info=failure.value)
    finally:
        engine.dispose()


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_repository_flow_logs_no_identity_number(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _run_a_whole_case_flow(db_url)
    logged = _everything_logged(caplog)
    assert "filing failed" in logged  # the capture works
    assert ID_NUMBER not in logged


def test_even_sqlalchemy_debug_logging_shows_no_identity_number(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator turning SQL logging on sees statements and masked rows, not numbers."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    _run_a_whole_case_flow(db_url)
    logged = _everything_logged(caplog)
    assert "INSERT INTO cases" in logged  # SQL logging really was on
    assert "3607**********461X" in logged  # rows with the number were logged, masked
    assert ID_NUMBER not in logged


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@contextmanager
def collected(name: str) -> Iterator[tuple[logging.Logger, _Collect]]:
    """A logger of its own (not propagating) whose formatted records are collected."""
    logger = logging.getLogger(name)
    logger.propagate = False
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_sensitive_data_filter_masks_messages_arguments_and_tracebacks() -> None:
    with collected("cadrebot.test.masking") as (logger, handler):
        install_sensitive_data_filter(logger)
        install_sensitive_data_filter(logger)  # idempotent
        assert sum(isinstance(f, SensitiveDataFilter) for f in handler.filters) == 1
        logger.warning("answers: %s", {"身份证号": ID_NUMBER, "电话": "13812345678"})
        try:
            raise ValueError(f"bad id {ID_NUMBER}")
        except ValueError:
            logger.exception("could not parse")
    text = "\n".join(handler.records)
    assert ID_NUMBER not in text
    assert "13812345678" not in text
    assert "3607**********461X" in text
    assert "could not parse" in text
    assert "ValueError: bad id 3607**********461X" in text


def test_sensitive_data_filter_masks_numbers_written_with_separators() -> None:
    with collected("cadrebot.test.masking.spaced") as (logger, handler):
        install_sensitive_data_filter(logger)
        logger.warning("inbound: %s", "身份证 3607 2119 8503 1246 1X，电话 138-1234-5678")
        try:
            raise ValueError("bad id ３６０７２１１９８５０３１２４６１Ｘ")
        except ValueError:
            logger.exception("could not parse")
    text = "\n".join(handler.records)
    assert "19850312" not in text.replace(" ", "")
    assert "１９８５０３１２" not in text
    assert "1234" not in text
    assert "ValueError: bad id 3607**********461X" in text
    assert "138****5678" in text
