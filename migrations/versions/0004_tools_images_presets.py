"""Tool messages, images kept with a conversation, and per-channel preset, keep-alive, tools.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("tool_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("image_count", sa.Integer(), nullable=True))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("preset", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("keep_alive", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("tools", sa.JSON(), nullable=True))
    op.create_table(
        "message_images",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_message_images_message_id", "message_images", ["message_id"])
    op.create_index("ix_message_images_session_id", "message_images", ["session_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_message_images_session_id", table_name="message_images")
    op.drop_index("ix_message_images_message_id", table_name="message_images")
    op.drop_table("message_images")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("tools")
        batch.drop_column("keep_alive")
        batch.drop_column("preset")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("image_count")
        batch.drop_column("tool_name")
