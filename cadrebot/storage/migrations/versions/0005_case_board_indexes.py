"""Indexes for the web case board (handlers/case_board.py) at 100,000 cases: counting cases
by status over a whole county, finding the cases in a status whose due dates are open, and
the cases closed per week (status changes into a final status, by time).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Measured with ``bench/web_load.py`` (EXPLAIN ANALYZE on PostgreSQL): without the events
index the dashboard's weekly figure read every event of the county (with it, only the
index); without ``cases (status, case_type)`` the county's counts by status read every case.

Kept free of imports from ``cadrebot``: a migration must not change when the models do.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_cases_status_case_type"), "cases", ["status", "case_type"])
    # Every column the weekly count reads, so it is answered from the index alone.
    op.create_index(
        op.f("ix_case_events_to_status_at_case_id_from_status"),
        "case_events",
        ["to_status", "at", "case_id", "from_status"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_case_events_to_status_at_case_id_from_status"), table_name="case_events")
    op.drop_index(op.f("ix_cases_status_case_type"), table_name="cases")
