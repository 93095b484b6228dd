"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}

# Review marker. Production refuses to upgrade through a revision that drops a table or column, renames,
# changes a column's type, adds a NOT NULL column without a default, builds an index without CONCURRENTLY
# (or adds a foreign key / unique constraint) on an existing PostgreSQL table, or runs DROP/DELETE/TRUNCATE
# SQL -- unless this says why it is safe, e.g. "column unused since 1.4, backed up in the release job".
# See docs/ROLLBACK.md ("Destructive revisions").
reviewed_destructive: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Reverse exactly what upgrade() did."""
    ${downgrades if downgrades else "pass"}
