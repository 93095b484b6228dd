"""track user activity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:05:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add when each user was last seen and how many messages they sent."""
    op.add_column("users", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("message_count", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    """Drop the activity columns; users and their names are kept."""
    with op.batch_alter_table("users") as batch:
        batch.drop_column("message_count")
        batch.drop_column("last_seen_at")
