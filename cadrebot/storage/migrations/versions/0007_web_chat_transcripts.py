"""The web chat's transcripts: ``web_chat_transcripts``, what the chat showed a browser
lately, so that every worker (and a restarted one) shows the same conversation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Kept free of imports from ``cadrebot``: a migration must not change when the models do.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_chat_transcripts",
        sa.Column("browser", sa.String(length=64), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("browser", name=op.f("pk_web_chat_transcripts")),
    )
    # The clean-up of transcripts past their 30 minutes.
    op.create_index(
        op.f("ix_web_chat_transcripts_updated_at"), "web_chat_transcripts", ["updated_at"]
    )


def downgrade() -> None:
    op.drop_table("web_chat_transcripts")
