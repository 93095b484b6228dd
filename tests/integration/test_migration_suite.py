"""The revision history under pytest-alembic's standard checks, plus a data round-trip, on each real backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_alembic.tests import (  # noqa: F401 - collected here as this project's own tests
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.engine import URL, Engine

from bot.data.urls import sync_url
from bot.migrate.graph import alembic_config as toolkit_alembic_config
from bot.settings.config import Config


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def suite_url(request: pytest.FixtureRequest) -> URL:
    """A fresh database on each backend."""
    return request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "postgres_url",
                                    "mariadb": "mariadb_url"}[request.param])


@pytest.fixture
def alembic_config(suite_url: URL) -> Any:
    """The project's own Alembic config (env.py, script location, toolkit options)."""
    return toolkit_alembic_config(Config(database_url=suite_url))


@pytest.fixture
def alembic_engine(suite_url: URL) -> Iterator[Engine]:
    """A sync engine on the test database; env.py runs the revisions on the connection pytest-alembic hands it."""
    url = sync_url(suite_url)
    if url.get_backend_name() == "sqlite":
        from pathlib import Path

        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def test_data_survives_the_round_trip(alembic_runner: Any, alembic_engine: Engine) -> None:
    """Rows written at 0001 survive the upgrade (with 0002's defaults) and the downgrade keeps users and names."""
    alembic_runner.migrate_up_to("0001")
    alembic_runner.insert_into("users", [{"id": 1, "first_name": "Ann", "username": "ann"},
                                         {"id": 2, "first_name": "Bob", "username": None}])
    alembic_runner.migrate_up_to("0002")
    with alembic_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, first_name, username, message_count, last_seen_at "
                                          "FROM users ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(1, "Ann", "ann", 0, None), (2, "Bob", None, 0, None)]
    with alembic_engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET message_count = 9 WHERE id = 1"))
    alembic_runner.migrate_down_one()
    with alembic_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, first_name, username FROM users ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(1, "Ann", "ann"), (2, "Bob", None)]
    alembic_runner.migrate_up_one()
    with alembic_engine.connect() as connection:
        counts = connection.execute(sa.text("SELECT message_count FROM users ORDER BY id")).scalars().all()
    assert counts == [0, 0], "0002's activity data is what a rollback loses (see docs/ROLLBACK.md)"
