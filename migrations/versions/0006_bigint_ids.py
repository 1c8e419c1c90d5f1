"""Row ids, and the columns that hold them, as BIGINT on PostgreSQL.

PostgreSQL's INTEGER (and the sequence of a SERIAL column) stops at 2^31: a busy
installation's messages or knowledge passages could get there. On SQLite nothing changes:
its INTEGER holds 64 bits already, and an id column must stay "INTEGER PRIMARY KEY" to be
the rowid that numbers new rows (rebuilding the tables in batch mode would copy every
message and image for nothing). Discord ids (snowflakes) were BIGINT from the start.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable)
ID_COLUMNS = (
    ("messages", "id", False),
    ("message_images", "id", False),
    ("message_images", "message_id", False),
    ("message_embeddings", "message_id", False),
    ("sessions", "summary_upto", True),
    ("kb_documents", "id", False),
    ("kb_chunks", "id", False),
    ("kb_chunks", "document_id", False),
    ("member_notes", "id", False),
)
# The tables whose id comes from a sequence (a SERIAL column's is named <table>_id_seq).
NUMBERED = ("messages", "message_images", "kb_documents", "kb_chunks", "member_notes")


def _change(to: type[sa.Integer], sequence_type: str) -> None:
    if op.get_context().dialect.name == "sqlite":
        return
    was = sa.Integer if to is sa.BigInteger else sa.BigInteger
    for table, column, nullable in ID_COLUMNS:
        op.alter_column(table, column, type_=to(), existing_type=was(), existing_nullable=nullable)
    if op.get_context().dialect.name == "postgresql":
        for table in NUMBERED:
            op.execute(f"ALTER SEQUENCE {table}_id_seq AS {sequence_type}")


def upgrade() -> None:
    _change(sa.BigInteger, "BIGINT")


def downgrade() -> None:
    _change(sa.Integer, "INTEGER")
