"""The notice outbox: ``outbound_notices``, notices for users the producing process cannot
reach (a farmer told of a status change made in the web console), kept until their channel
delivers them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Kept free of imports from ``cadrebot``: a migration must not change when the models do.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbound_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_outbound_notices_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_notices")),
    )
    # The deliverers' claim: a channel's notices due by now.
    op.create_index(
        op.f("ix_outbound_notices_channel_next_attempt_at"),
        "outbound_notices",
        ["channel", "next_attempt_at"],
    )
    # A web-chat user's pending notices, and the cascade when a user is deleted.
    op.create_index(
        op.f("ix_outbound_notices_user_id_sent_at"), "outbound_notices", ["user_id", "sent_at"]
    )
    op.create_index(op.f("ix_outbound_notices_created_at"), "outbound_notices", ["created_at"])


def downgrade() -> None:
    op.drop_table("outbound_notices")
