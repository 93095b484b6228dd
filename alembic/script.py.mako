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

# The review (docs/REVIEW.md) judges every statement this revision sends. Production refuses a finding (a
# dropped column, a blocking index build, DELETE without WHERE, ...) unless it is acknowledged here by rule
# id, with why it is safe, e.g. {"drop-column": "users.nickname unused since 1.4"}. `invoke review` lists them.
reviewed: dict[str, str] = {}


def upgrade() -> None:
    """Apply this revision."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Reverse exactly what upgrade() did."""
    ${downgrades if downgrades else "pass"}
