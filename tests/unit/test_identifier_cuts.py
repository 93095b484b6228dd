"""PostgreSQL identifiers the server would cut to 63 bytes are named by the parser-based reader, and only those."""

from __future__ import annotations

import pytest

from bot.migrate.review.pg_reader import read_statements


def long_names(sql: str) -> tuple[str, ...]:
    """The cut names the reader attaches to a statement's first action."""
    return read_statements(sql).statements[0][1][0].long_names


@pytest.mark.parametrize(("name", "kept_bytes"), [
    ("a" * 70, 63),  # plain ASCII: cut at 63 bytes
    ("é" * 40, 62),  # two-byte characters: the 32nd would not fit, so 62 bytes are kept
    ("日" * 30, 63),  # three-byte characters: 21 of them fill 63 bytes exactly
    ("a" * 62 + "é", 62),  # the last character alone does not fit
])
def test_a_name_longer_than_postgresql_keeps_is_reported_as_cut(name: str, kept_bytes: int) -> None:
    """A quoted table name over 63 bytes comes back as the prefix the server would keep."""
    found = long_names(f'CREATE TABLE "{name}" (id integer)')
    assert [len(cut.encode("utf-8")) for cut in found] == [kept_bytes]
    assert name.startswith(found[0])


@pytest.mark.parametrize("sql", [
    'CREATE TABLE "' + "a" * 63 + '" (id integer)',  # exactly the limit: kept whole
    'CREATE TABLE "' + "é" * 31 + '" (id integer)',  # 62 bytes, nothing cut
    "CREATE TABLE bench_0005 (id serial NOT NULL, note varchar(50), PRIMARY KEY (id))",
    'CREATE INDEX "' + 'x""' * 30 + '" ON users (id)',  # 60 bytes with quotes inside, kept whole
])
def test_names_within_the_limit_are_not_reported(sql: str) -> None:
    """Names the server keeps whole are not findings, however they are quoted."""
    assert long_names(sql) == ()


def test_a_cut_column_in_a_long_statement_is_found_among_other_nodes() -> None:
    """The cut name is found in a column list, not only as the statement's table."""
    column = "c" * 64
    found = long_names(f"ALTER TABLE users ADD COLUMN {column} integer DEFAULT 0 NOT NULL")
    assert found == (column[:63],)
