"""Personas, per-channel threads, fair-use quotas and kept benchmark runs.

A channel's session gains the persona it answers as and whether its questions are always
answered in threads; servers gain personas and quota policies; members' token use is kept
per hour (so a restart does not reset a quota); `/model bench` runs are kept to be shown
side by side.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the models' RowId: BIGINT (BIGSERIAL) on PostgreSQL, the rowid on SQLite.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("persona", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("threads", sa.Boolean(), nullable=True))
    op.create_table(
        "bench_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bench_runs_scope_model", "bench_runs", ["scope", "model", "id"])
    op.create_table(
        "personas",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("description", sa.String(length=100), nullable=True),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("preset", sa.String(length=40), nullable=True),
        sa.Column("options", sa.JSON(), nullable=True),
        sa.Column("tools", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "name", name="uq_personas_scope_name"),
    )
    op.create_table(
        "quota_policies",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("tokens_per_hour", sa.BigInteger(), nullable=True),
        sa.Column("tokens_per_day", sa.BigInteger(), nullable=True),
        sa.Column("role_overrides", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "token_usage",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "user_id", "hour"),
    )


def downgrade() -> None:
    op.drop_table("token_usage")
    op.drop_table("quota_policies")
    op.drop_table("personas")
    op.drop_index("ix_bench_runs_scope_model", table_name="bench_runs")
    op.drop_table("bench_runs")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("threads")
        batch.drop_column("persona")
