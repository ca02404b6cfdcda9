"""estimator state per catalog

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "estimator_states",
        sa.Column("catalog", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("catalog"),
    )


def downgrade() -> None:
    op.drop_table("estimator_states")
