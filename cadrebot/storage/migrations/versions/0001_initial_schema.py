"""Initial schema: users, exchanges, dialog states, cases and their history, invite codes,
knowledge-base versions.

Revision ID: 0001
Revises:
Create Date: 2026-05-06

Written from autogenerate output and reviewed. Timestamps are ``timestamptz`` on PostgreSQL;
on SQLite they are text and the models' ``UTCDateTime`` type keeps them in UTC.
Kept free of imports from ``cadrebot``: a migration must not change when the models do.
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("township", sa.String(length=100), nullable=True),
        sa.Column("village", sa.String(length=100), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint("role IN ('farmer', 'cadre', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("channel", "external_id", name=op.f("uq_users_channel_external_id")),
    )

    op.create_table(
        "exchanges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("inbound_text", sa.Text(), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=False),
        sa.Column("found", sa.Boolean(), nullable=True),
        sa.Column("cited_chunk_ids", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("kb_version", sa.String(length=64), nullable=True),
        _timestamp("created_at"),
        sa.Column("feedback", sa.String(length=8), nullable=True),
        sa.CheckConstraint(
            "feedback IS NULL OR feedback IN ('up', 'down')", name=op.f("ck_exchanges_feedback")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_exchanges_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchanges")),
    )
    op.create_index(
        op.f("ix_exchanges_channel_chat_id_created_at"),
        "exchanges",
        ["channel", "chat_id", "created_at"],
    )

    op.create_table(
        "conversation_locks",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id", name=op.f("pk_conversation_locks")),
    )

    op.create_table(
        "dialog_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("form_name", sa.String(length=64), nullable=False),
        sa.Column("current_field", sa.String(length=64), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("scratch", sa.JSON(), nullable=False),
        _timestamp("started_at"),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialog_states")),
        sa.UniqueConstraint("channel", "chat_id", name=op.f("uq_dialog_states_channel_chat_id")),
    )

    op.create_table(
        "case_counters",
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "year", name=op.f("pk_case_counters")),
    )

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_type", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("submitter_id", sa.Integer(), nullable=False),
        sa.Column("township", sa.String(length=100), nullable=False),
        sa.Column("village", sa.String(length=100), nullable=False),
        _timestamp("submitted_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "case_type IN ('risk_report', 'subsidy')", name=op.f("ck_cases_case_type")
        ),
        sa.ForeignKeyConstraint(
            ["submitter_id"], ["users.id"], name=op.f("fk_cases_submitter_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("number", name=op.f("uq_cases_number")),
    )
    op.create_index(op.f("ix_cases_submitted_at"), "cases", ["submitted_at"])
    op.create_index(op.f("ix_cases_submitter_id"), "cases", ["submitter_id"])
    op.create_index(
        op.f("ix_cases_township_village_status"), "cases", ["township", "village", "status"]
    )

    op.create_table(
        "case_due_dates",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_due_dates_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", "name", name=op.f("pk_case_due_dates")),
    )
    op.create_index(op.f("ix_case_due_dates_due_on"), "case_due_dates", ["due_on"])

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        _timestamp("at"),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_case_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_events_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index(op.f("ix_case_events_case_id_at"), "case_events", ["case_id", "at"])

    op.create_table(
        "invite_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("township", sa.String(length=100), nullable=True),
        sa.Column("village", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("used_by_id", sa.Integer(), nullable=True),
        _timestamp("used_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("expires_at", nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "role IN ('farmer', 'cadre', 'admin')", name=op.f("ck_invite_codes_role")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_invite_codes_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["used_by_id"],
            ["users.id"],
            name=op.f("fk_invite_codes_used_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_invite_codes_code")),
    )

    op.create_table(
        "kb_versions",
        sa.Column("version_id", sa.String(length=64), nullable=False),
        _timestamp("built_at"),
        sa.Column("doc_count", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_kb_versions")),
    )


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes too.
    op.drop_table("kb_versions")
    op.drop_table("invite_codes")
    op.drop_table("case_events")
    op.drop_table("case_due_dates")
    op.drop_table("cases")
    op.drop_table("case_counters")
    op.drop_table("dialog_states")
    op.drop_table("conversation_locks")
    op.drop_table("exchanges")
    op.drop_table("users")
