"""The running bot (real aiogram, in this process) keeps answering after the server kills its connections."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import URL

from bot.migrate import api as migrations
from bot.settings.loading import load_config
from tests.support.database import query
from tests.support.environment import TOKEN, plain
from tests.support.fake_telegram import FakeTelegram

KILL_SESSIONS = {
    # Every other session on the test's database: the bot's pooled connections and its polling-lock connection.
    "postgresql": "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    "mariadb": "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()",
}


def kill_other_sessions(url: URL) -> int:
    """Terminate every connection to the database except the one doing it; return how many."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        return int(query(url, KILL_SESSIONS[backend])[0][0])
    ids = [row[0] for row in query(url, KILL_SESSIONS[backend])]
    for session_id in ids:
        query(url, f"KILL {int(session_id)}")
    return len(ids)


async def exchange(telegram: FakeTelegram, user_id: int, name: str) -> None:
    """Send /start as a user and wait until the bot answered that user."""
    telegram.push_message(TOKEN, "/start", user_id=user_id, first_name=name)
    await asyncio.to_thread(telegram.wait_for, "sendMessage", token=TOKEN, timeout=20,
                            predicate=lambda call: call.params.get("chat_id") == str(user_id))


@pytest.mark.parametrize("backend", ["postgres_url", "mariadb_url"])
def test_bot_answers_after_its_database_connections_are_killed(backend: str, request: pytest.FixtureRequest,
                                                               telegram: FakeTelegram) -> None:
    """After pg_terminate_backend / KILL of all its sessions, the next update is still served and stored."""
    from bot.signals import StopSignal
    from bot.telegram.runner import serve

    url: URL = request.getfixturevalue(backend)
    config = load_config({"ENV": "production", "DATABASE_URL": plain(url), "BOT_TOKEN": TOKEN,
                          "TELEGRAM_API_URL": telegram.url, "SHUTDOWN_TIMEOUT": "2"}, stderr_is_terminal=False)
    migrations.upgrade(config)

    async def scenario() -> int:
        stop = StopSignal()
        bot = asyncio.create_task(serve(config, stop))
        try:
            await asyncio.to_thread(telegram.wait_for, "getUpdates", token=TOKEN, timeout=30)
            await exchange(telegram, 501, "Before")
            killed = kill_other_sessions(url)
            await exchange(telegram, 502, "After")
        finally:
            stop.drain.set()
            await asyncio.wait_for(bot, 20)
        return killed

    killed = asyncio.run(scenario())
    assert killed >= 1, "the bot held no connection to kill, so nothing was proven"
    rows = query(url, "SELECT id, first_name FROM users ORDER BY id")
    assert rows == [(501, "Before"), (502, "After")]
