"""One poller per token: leader election in-process on each backend, then with real `invoke start` processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.settings.loading import load_config
from bot.telegram.listener.health import RuntimeState
from bot.telegram.polling.leader import LeaderElection
from tests.support.bots import Replica, http_json, metric_value, scrape_metrics, sigterm_after, wait_until
from tests.support.environment import PG_ADMIN, TOKEN, clean_env, free_port, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import json_lines
from tests.support.revisions import HEAD

Lead = Callable[[asyncio.Event, bool], Awaitable[None]]


def _lead(name: str, stop: asyncio.Event, terms: list[tuple[str, bool, float]]) -> Lead:
    """A stand-in for polling: record the term, then hold it until a stop or a lost lock."""

    async def lead(lost: asyncio.Event, took_over: bool) -> None:
        terms.append((name, took_over, time.monotonic()))
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    return lead


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_one_leader_per_bot_and_a_standby_takes_over(any_url: URL) -> None:
    """Two replicas of bot 42: one leads, one stands by and takes over within 2 s; bot 43 leads on its own."""
    config = load_config({"DATABASE_URL": plain(any_url)})

    async def scenario() -> float:
        terms: list[tuple[str, bool, float]] = []
        stops = {name: asyncio.Event() for name in ("a", "b", "other")}
        states = {name: RuntimeState("polling") for name in stops}
        elections = {name: LeaderElection(config, 43 if name == "other" else 42, states[name], stops[name],
                                          interval=0.2) for name in stops}
        run = {name: asyncio.create_task(elections[name].run(_lead(name, stops[name], terms))) for name in stops}
        await _until(lambda: len(terms) == 2 and {states["a"].role, states["b"].role} == {"leader", "standby"})
        assert states["other"].role == "leader", "another bot's lock is independent"
        first = "a" if states["a"].role == "leader" else "b"
        second = "b" if first == "a" else "a"
        stops[first].set()
        stopped = time.monotonic()
        await run[first]
        await _until(lambda: states[second].role == "leader")
        takeover = next(at for name, _took, at in terms if name == second) - stopped
        assert [(name, took) for name, took, _at in terms if name != "other"] == [(first, False), (second, True)]
        stops[second].set()
        stops["other"].set()
        await asyncio.gather(*run.values())
        return takeover

    assert asyncio.run(scenario()) < 2.0


def test_a_standby_is_woken_by_the_release_not_by_its_next_try(any_url: URL) -> None:
    """A standby waiting up to 60 s per try on the lock takes over as soon as the leader stops, and stops promptly."""
    config = load_config({"DATABASE_URL": plain(any_url)})

    async def scenario() -> None:
        terms: list[tuple[str, bool, float]] = []
        stops = {name: asyncio.Event() for name in ("a", "b", "c")}
        states = {name: RuntimeState("polling") for name in stops}
        elections = {name: LeaderElection(config, 42, states[name], stops[name], interval=60) for name in stops}
        run = {name: asyncio.create_task(elections[name].run(_lead(name, stops[name], terms))) for name in stops}
        await _until(lambda: len(terms) == 1 and sorted(s.role for s in states.values()) == [
            "leader", "standby", "standby"])
        first = terms[0][0]
        stops[first].set()
        await run[first]
        await _until(lambda: len(terms) == 2, timeout=10)  # long before the standbys' 60 s tries end
        assert terms[1][0] != first and terms[1][1] is True
        waiting = next(name for name in stops if name not in (first, terms[1][0]))
        assert states[waiting].role == "standby"
        stops[waiting].set()
        await asyncio.wait_for(run[waiting], 5)  # a standby in the middle of its wait stops all the same
        stops[terms[1][0]].set()
        await asyncio.gather(*run.values())

    asyncio.run(scenario())


def test_a_leader_whose_lock_connection_dies_steps_down(postgres_url: URL) -> None:
    """Killing the leader's lock session on PostgreSQL logs leadership lost, and the standby takes over."""
    import psycopg

    config = load_config({"DATABASE_URL": plain(postgres_url)})

    async def scenario() -> None:
        terms: list[tuple[str, bool, float]] = []
        stops = {name: asyncio.Event() for name in ("a", "b")}
        states = {name: RuntimeState("polling") for name in stops}
        elections = {name: LeaderElection(config, 42, states[name], stops[name], interval=0.2) for name in stops}
        run = {name: asyncio.create_task(elections[name].run(_lead(name, stops[name], terms))) for name in stops}
        await _until(lambda: len(terms) == 1 and "standby" in {s.role for s in states.values()})
        leader = terms[0][0]
        with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a "
                                   "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                                   "AND a.datname = %s", (postgres_url.database,)).fetchall()
        assert len(killed) == 1
        await _until(lambda: len(terms) == 2)
        assert terms[1][0] != leader and terms[1][1] is True
        await _until(lambda: states[leader].role == "standby")
        for stop in stops.values():
            stop.set()
        await asyncio.gather(*run.values())

    asyncio.run(scenario())


# -- real processes ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_real_replicas_poll_once_and_fail_over(project: Path, postgres_url: URL, telegram: FakeTelegram) -> None:
    """Two `invoke start` replicas: exactly one polls; SIGKILL it and the other takes over and answers."""
    ports = [free_port(), free_port()]
    replicas = [Replica(project, clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url,
                                           DATABASE_URL=plain(postgres_url), HEALTH_PORT=str(port),
                                           ADMIN_IDS="5001"))
                for port in ports]
    try:
        wait_until(lambda: all(r.named("standing by") or r.named("polling started") for r in replicas), 40,
                   "both replicas to settle")
        leaders = [i for i, r in enumerate(replicas) if r.named("polling started")]
        assert len(leaders) == 1, [r.raw for r in replicas]
        leader, standby = leaders[0], 1 - leaders[0]
        time.sleep(1.5)  # a few standby rounds: still one poller, no 409 anywhere
        assert telegram.conflicts.get(TOKEN, 0) == 0
        assert not replicas[standby].named("polling started")
        assert http_json(f"http://127.0.0.1:{ports[standby]}/healthz")[0] == 200
        status, body = http_json(f"http://127.0.0.1:{ports[standby]}/readyz")
        assert status == 200 and body["role"] == "standby" and body["checks"]["role"]["ok"] is True, body
        status, body = http_json(f"http://127.0.0.1:{ports[leader]}/readyz")
        assert status == 200 and body["role"] == "leader" and body["revision"] == HEAD, body
        standing = scrape_metrics(f"http://127.0.0.1:{ports[standby]}/metrics")
        assert metric_value(standing, "bot_leader") == 0 and metric_value(standing, "bot_role", role="standby") == 1
        starts = wait_until(lambda: [c for c in telegram.calls_to("sendMessage", TOKEN)
                                     if c.params["chat_id"] == "5001"] if len(telegram.calls_to(
                                         "sendMessage", TOKEN)) >= 2 else None, 10, "start notices")
        assert sorted("role: leader" in c.params["text"] for c in starts) == [False, True]

        killed_at = time.monotonic()
        replicas[leader].process.kill()
        wait_until(lambda: replicas[standby].named("polling started"), 15, "the standby to take over")
        takeover_s = time.monotonic() - killed_at
        elected = replicas[standby].named("leader elected")[0]
        assert elected["took_over"] is True and takeover_s < 5, takeover_s
        telegram.push_message(TOKEN, "/help", user_id=606)
        wait_until(lambda: [c for c in telegram.completed if c.method == "sendMessage"
                            and c.params["chat_id"] == "606"], 10, "the new leader's reply")
        took_over = scrape_metrics(f"http://127.0.0.1:{ports[standby]}/metrics")
        assert metric_value(took_over, "bot_leader") == 1 and metric_value(took_over, "bot_leader_takeovers_total") == 1
        assert replicas[standby].stop() == 0
        assert replicas[standby].named("bot stopped")
        print(f"takeover after SIGKILL: {takeover_s:.2f}s")
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.kill()


# -- in-process polling: a leftover webhook, and a poller outside the election ------------------------


def test_leader_removes_a_leftover_webhook_before_polling(sqlite_url: URL, telegram: FakeTelegram,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A webhook left from webhook mode is deleted (and logged) before the first getUpdates, so no 409."""
    from bot.telegram.runner import run_bot

    telegram.webhooks[TOKEN] = {"url": "https://old.example.com/hook"}
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url})
    sigterm_after(lambda: wait_until(lambda: [c for c in telegram.completed if c.method == "getUpdates"], 30,
                                     "a completed getUpdates"))
    run_bot(config)
    methods = [call.method for call in telegram.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert telegram.webhooks.get(TOKEN) is None
    removed = [e for e in json_lines(capsys.readouterr().err) if e.get("event") == "leftover webhook removed"]
    assert removed and removed[0]["url"] == "https://old.example.com/hook"


def test_a_foreign_poller_gives_one_clear_conflict_error(sqlite_url: URL, telegram: FakeTelegram,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """409 from getUpdates: one `polling conflict` error event with the fix, not a silent retry loop."""
    from bot.telegram.runner import run_bot

    telegram.foreign_pollers.add(TOKEN)
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url})
    sigterm_after(lambda: wait_until(lambda: len(telegram.calls_to("getUpdates", TOKEN)) >= 2, 30,
                                     "a second getUpdates"))
    run_bot(config)
    events = json_lines(capsys.readouterr().err)
    conflicts = [e for e in events if e.get("event") == "polling conflict"]
    assert len(conflicts) == 1, "repeated at most every 30 s, not on every retry"
    assert conflicts[0]["level"] == "error" and "Conflict" in conflicts[0]["description"]
    assert "another process polls this token" in conflicts[0]["fix"]
