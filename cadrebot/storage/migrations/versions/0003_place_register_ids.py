"""Place-register ids: ``township_id``/``village_id`` on cases, users (a cadre's
jurisdiction) and invite codes; existing free-text places mapped to the register.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Access to cases goes by these ids (``handlers/places.py``), no longer by the text typed.
Existing rows are matched the way the forms now match what is typed: invisible characters,
spaces and full-width forms removed, the suffix (镇/乡/街道) optional, a county prefix
allowed. What matches gets the ids and the register's spelling; what does not keeps its
text and no id: such cases wait in the admins' unassigned queue (``/cases 未分配``), such
cadres are listed for a new invite.

The register matched against is the one shipped with this revision (``SHIPPED_TOWNSHIPS``,
a copy of ``knowledge/places.toml`` of 2026-12: a migration must not change when the file
does), unless the caller passes a resolver in ``config.attributes["place_resolver"]``:
``(township, village) -> (township_id, township, village_id, village) | None``.

Kept free of imports from ``cadrebot``: a migration must not change when the models do.
"""

import re
import unicodedata
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Resolved = tuple[str, str, str | None, str | None]
Resolver = Callable[[str, str | None], Resolved | None]

# (id, county, name, aliases, villages (id, name))
SHIPPED_TOWNSHIPS: tuple[
    tuple[str, str, str, tuple[str, ...], tuple[tuple[str, str], ...]], ...
] = (
    ("rjxq.tankou", "蓉江新区", "潭口镇", (), (("rjxq.tankou.jiangba", "江坝村"),)),
    ("rjxq.tandong", "蓉江新区", "潭东镇", (), (("rjxq.tandong.longjing", "龙井村"),)),
    ("xf.jiading", "信丰县", "嘉定镇", (), ()),
    ("xf.datangbu", "信丰县", "大塘埠镇", (), ()),
    ("xf.gupi", "信丰县", "古陂镇", (), ()),
    ("xf.daqiao", "信丰县", "大桥镇", (), ()),
    ("xf.xintian", "信丰县", "新田镇", (), ()),
    ("xf.anxi", "信丰县", "安西镇", (), ()),
    ("xf.xiaojiang", "信丰县", "小江镇", (), ()),
    ("xf.tieshikou", "信丰县", "铁石口镇", (), ()),
    ("xf.daa", "信丰县", "大阿镇", (), ()),
    ("xf.youshan", "信丰县", "油山镇", (), ()),
    ("xf.xiaohe", "信丰县", "小河镇", (), ()),
    ("xf.xiniu", "信丰县", "西牛镇", (), ()),
    ("xf.zhengping", "信丰县", "正平镇", (), ()),
    ("xf.hushan", "信丰县", "虎山乡", (), ()),
    ("xf.chongxian", "信丰县", "崇仙乡", (), ()),
    ("xf.wanlong", "信丰县", "万隆乡", (), ()),
    ("fl.fuliang", "浮梁县", "浮梁镇", (), ()),
    ("fl.ehu", "浮梁县", "鹅湖镇", (), ()),
    ("fl.jinggongqiao", "浮梁县", "经公桥镇", (), ()),
    ("fl.jiaotan", "浮梁县", "蛟潭镇", (), ()),
    ("fl.xianghu", "浮梁县", "湘湖镇", (), ()),
    ("fl.yaoli", "浮梁县", "瑶里镇", ("瑶里乡",), ()),
    ("fl.hongyuan", "浮梁县", "洪源镇", (), ()),
    ("fl.shouan", "浮梁县", "寿安镇", (), ()),
    ("fl.sanlong", "浮梁县", "三龙镇", ("三龙乡",), ()),
    ("fl.wanggang", "浮梁县", "王港乡", (), ()),
    ("fl.zhuangwan", "浮梁县", "庄湾乡", (), ()),
    ("fl.huangtan", "浮梁县", "黄坛乡", (), ()),
    ("fl.xingtian", "浮梁县", "兴田乡", (), ()),
    ("fl.jiangcun", "浮梁县", "江村乡", (), ()),
    ("fl.zhitan", "浮梁县", "峙滩乡", ("峙滩镇",), ()),
    ("fl.legong", "浮梁县", "勒功乡", (), ()),
    ("fl.xihu", "浮梁县", "西湖乡", (), ()),
)

_INVISIBLE = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]+")
_EDGE_PUNCTUATION = "。，,.、;；:：!！?？\"'“”‘’()（）[]【】<>《》"
_TOWNSHIP_SUFFIXES = ("街道办事处", "街道办", "街道", "镇", "乡")
_VILLAGE_SUFFIXES = ("村民委员会", "居民委员会", "村委会", "居委会", "社区", "村")
_COUNTY_SUFFIXES = ("新区", "县", "区", "市")


def _clean(text: str) -> str:
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).strip(_EDGE_PUNCTUATION)


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _shipped_resolver() -> Resolver:
    keys: dict[str, set[int]] = {}
    for index, (_, county, name, aliases, _villages) in enumerate(SHIPPED_TOWNSHIPS):
        counties = {county, _stem(county, _COUNTY_SUFFIXES)}
        for spelled in (name, *aliases):
            for key in (spelled, _stem(spelled, _TOWNSHIP_SUFFIXES)):
                for prefix in ("", *counties):
                    keys.setdefault(prefix + key, set()).add(index)

    def resolve(township: str, village: str | None) -> Resolved | None:
        wanted = _clean(township)
        for key in (wanted, _stem(wanted, _TOWNSHIP_SUFFIXES)):
            hits = keys.get(key, set())
            if len(hits) > 1:
                return None  # ambiguous: an admin decides
            if hits:
                township_id, _, name, _, villages = SHIPPED_TOWNSHIPS[next(iter(hits))]
                typed = _clean(village) if village else ""
                if not typed:
                    return (township_id, name, None, None)
                found = [
                    (vid, vname)
                    for vid, vname in villages
                    if typed == vname
                    or _stem(typed, _VILLAGE_SUFFIXES) == _stem(vname, _VILLAGE_SUFFIXES)
                ]
                if len(found) == 1:
                    return (township_id, name, found[0][0], found[0][1])
                return (township_id, name, None, typed)
        return None

    return resolve


def _resolver() -> Resolver:
    given = context.config.attributes.get("place_resolver")
    return given if callable(given) else _shipped_resolver()


def _add_columns(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("township_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("village_id", sa.String(length=64), nullable=True))


def _map(connection: sa.Connection, name: str, resolve: Resolver) -> None:
    table = sa.table(
        name,
        sa.column("id", sa.Integer()),
        sa.column("township", sa.String()),
        sa.column("village", sa.String()),
        sa.column("township_id", sa.String()),
        sa.column("village_id", sa.String()),
    )
    rows = connection.execute(
        sa.select(table.c.id, table.c.township, table.c.village).where(
            table.c.township.is_not(None)
        )
    ).all()
    for row in rows:
        place = resolve(row.township, row.village)
        if place is None:
            continue
        township_id, township, village_id, village = place
        values: dict[str, str | None] = {
            "township_id": township_id,
            "township": township,
            "village_id": village_id,
        }
        if village is not None:
            values["village"] = village
        connection.execute(sa.update(table).where(table.c.id == row.id).values(**values))


def upgrade() -> None:
    for table in ("users", "cases", "invite_codes"):
        _add_columns(table)
    op.create_index(
        op.f("ix_cases_township_id_village_id_status"),
        "cases",
        ["township_id", "village_id", "status"],
    )
    resolve = _resolver()
    connection = op.get_bind()
    for table in ("users", "cases", "invite_codes"):
        _map(connection, table, resolve)


def downgrade() -> None:
    op.drop_index(op.f("ix_cases_township_id_village_id_status"), table_name="cases")
    for table in ("invite_codes", "cases", "users"):
        # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): rebuilding ``users`` would
        # mean dropping a table other tables' foreign keys point to.
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("village_id")
            batch.drop_column("township_id")
