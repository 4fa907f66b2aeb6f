"""Migration 0003 maps the free-text places of existing cases, cadres and invite codes to
the place register; what it cannot match stays without an id (the admins' queue)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from cadrebot.handlers.ports import CaseQuery, Role
from cadrebot.storage import SqlUnitOfWorkFactory, downgrade, make_engine, upgrade
from tests.support.clock import SHANGHAI

WHEN = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)
# (number, township, village) as filed before the register, typed every which way.
OLD_CASES = (
    ("FX-2026-000001", "潭东", "龙井村"),
    ("FX-2026-000002", "潭东镇\u200b", "长岭村 "),
    ("FX-2026-000003", " 大塘埠镇", "坪石村"),
    ("FX-2026-000004", "信丰县大塘埠", "坪石村"),
    ("FX-2026-000005", "北京镇", "某村"),
    ("FX-2026-000006", "潭冬镇", "龙井村"),
)


def _fill_at_0002(url: str) -> None:
    upgrade(url, "0002")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for index, (external, township, village) in enumerate(
                (
                    ("farmer", None, None),
                    ("cadre-tandong", "潭东镇", None),
                    ("cadre-village", "大塘埠\u200b", "坪石村"),
                    ("cadre-lost", "北京镇", None),
                ),
                start=1,
            ):
                connection.execute(
                    text(
                        "INSERT INTO users (id, channel, external_id, display_name, role, "
                        "township, village, created_at) VALUES (:id, 'console', :ext, '', "
                        ":role, :township, :village, :at)"
                    ),
                    {
                        "id": index,
                        "ext": external,
                        "role": "farmer" if township is None else "cadre",
                        "township": township,
                        "village": village,
                        "at": WHEN,
                    },
                )
            for index, (number, township, village) in enumerate(OLD_CASES, start=1):
                connection.execute(
                    text(
                        "INSERT INTO cases (id, case_type, number, status, fields, "
                        "submitter_id, township, village, submitted_at, updated_at) VALUES "
                        "(:id, 'risk_report', :number, '已受理', '{}', 1, :township, "
                        ":village, :at, :at)"
                    ),
                    {
                        "id": index,
                        "number": number,
                        "township": township,
                        "village": village,
                        "at": WHEN,
                    },
                )
            connection.execute(
                text(
                    "INSERT INTO invite_codes (code, township, village, role, created_at, "
                    "revoked) VALUES ('YQ-OLD', '潭口', NULL, 'cadre', :at, false)"
                ),
                {"at": WHEN},
            )
    finally:
        engine.dispose()


def test_migration_maps_old_places_and_leaves_the_rest_unassigned(db_url: str) -> None:
    _fill_at_0002(db_url)
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with SqlUnitOfWorkFactory(engine, tz=SHANGHAI)() as uow:
            cases = {c.number: c for c in uow.cases.list_cases(CaseQuery(), limit=50).items}
            placed = {
                n: (c.township, c.township_id, c.village, c.village_id) for n, c in cases.items()
            }
            assert placed == {
                "FX-2026-000001": ("潭东镇", "rjxq.tandong", "龙井村", "rjxq.tandong.longjing"),
                "FX-2026-000002": ("潭东镇", "rjxq.tandong", "长岭村", None),
                "FX-2026-000003": ("大塘埠镇", "xf.datangbu", "坪石村", None),
                "FX-2026-000004": ("大塘埠镇", "xf.datangbu", "坪石村", None),
                "FX-2026-000005": ("北京镇", None, "某村", None),
                "FX-2026-000006": ("潭冬镇", None, "龙井村", None),
            }
            queue = uow.cases.list_cases(CaseQuery(unassigned=True))
            assert sorted(c.number for c in queue.items) == ["FX-2026-000005", "FX-2026-000006"]
            tandong = uow.cases.list_cases(CaseQuery(township_id="rjxq.tandong"))
            assert tandong.total == 2

            cadres = {u.external_id: u for u in uow.users.list_users(roles=frozenset(Role))}
            assert cadres["cadre-tandong"].township_id == "rjxq.tandong"
            village_cadre = cadres["cadre-village"]
            assert (village_cadre.township, village_cadre.township_id) == (
                "大塘埠镇",
                "xf.datangbu",
            )
            assert village_cadre.village == "坪石村" and village_cadre.village_id is None
            assert cadres["cadre-lost"].township_id is None
            assert cadres["farmer"].township_id is None
            invite = uow.invites.get("YQ-OLD")
            assert invite is not None
            assert (invite.township, invite.township_id) == ("潭口镇", "rjxq.tankou")
    finally:
        engine.dispose()


def test_migration_0003_down_and_up_again(db_url: str) -> None:
    _fill_at_0002(db_url)
    upgrade(db_url)
    downgrade(db_url, "0002")
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with SqlUnitOfWorkFactory(engine, tz=SHANGHAI)() as uow:
            assert uow.cases.list_cases(CaseQuery(unassigned=True)).total == 2
    finally:
        engine.dispose()
