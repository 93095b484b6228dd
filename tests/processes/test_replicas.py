"""Several replicas at once: 8 real `invoke migrate` / `invoke start` processes on one empty database."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.support.commands import spawn
from tests.support.database import schema, versions
from tests.support.environment import clean_env, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named, json_lines
from tests.support.revisions import HEAD, NEXT, SHIPPED, add_slow_revision

REPLICAS = 8
ROUNDS = int(os.environ.get("REPLICA_ROUNDS", "2"))
BACKENDS = ["postgres_url", "mariadb_url"]


def replica_token(index: int) -> str:
    """A distinct, well-formed bot token per replica (Telegram allows one poller per token)."""
    return f"{700000 + index}:AAH{index}replicatoken-abcdefghijklmnop"


def finish(processes: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str]]:
    """Wait for every process; kill the rest if one hangs, so a failure never leaks processes."""
    results = []
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            _stdout, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1))
            results.append((process.returncode, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda n: f"round{n + 1}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_concurrent_migrates_apply_every_revision_exactly_once(
        backend: str, round_: int, project: Path, request: pytest.FixtureRequest) -> None:
    """8 `invoke migrate` processes on an empty database all exit 0, at head, each revision applied once in all."""
    url: URL = request.getfixturevalue(backend)
    add_slow_revision(project, 1.5)  # keeps the lock busy long enough for the others to queue on it
    env = clean_env(DATABASE_URL=plain(url), MIGRATION_LOCK_TIMEOUT="60", DB_WAIT_TIMEOUT="10")
    processes = [spawn(project, "migrate", env=env) for _ in range(REPLICAS)]
    results = finish(processes, timeout=90)

    assert [code for code, _ in results] == [0] * REPLICAS, "\n".join(err[-1500:] for code, err in results if code)
    applied = Counter(str(event["revision"]) for _, err in results for event in events_named(err, "migration applied"))
    assert applied == {**dict.fromkeys(SHIPPED, 1), NEXT: 1}, f"each revision exactly once across processes: {applied}"
    completed = [err for _, err in results if events_named(err, "migrations complete")]
    idle = [err for _, err in results if events_named(err, "nothing to migrate")]
    assert len(completed) == 1 and len(idle) == REPLICAS - 1
    waits = [event for _, err in results for event in events_named(err, "waiting for migration lock")]
    assert waits, "the replicas never overlapped, so the lock was not exercised"
    assert any(event["holder"] for event in waits), "a waiting replica names who holds the lock"
    assert versions(url) == [NEXT]
    assert "nickname" in schema(url)["users"]


def seconds_after(stderr: str, name: str, since: float) -> float:
    """Wall seconds from `since` (time.time()) to this process's first event of that name."""
    stamp = str(events_named(stderr, name)[0]["timestamp"]).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp() - since


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_concurrent_starts_all_reach_polling_and_stop_on_sigterm(
        backend: str, project: Path, request: pytest.FixtureRequest, telegram: FakeTelegram) -> None:
    """8 production `invoke start` replicas (one token each) on one empty database all poll; SIGTERM → exit 0."""
    url: URL = request.getfixturevalue(backend)
    tokens = [replica_token(index) for index in range(REPLICAS)]
    environments = [clean_env(ENV="production", DATABASE_URL=plain(url), BOT_TOKEN=token,
                              TELEGRAM_API_URL=telegram.url, MIGRATION_LOCK_TIMEOUT="60", SHUTDOWN_TIMEOUT="2")
                    for token in tokens]
    started, wall = time.monotonic(), time.time()
    processes = [spawn(project, "start", env=env) for env in environments]
    try:
        first_polls = [telegram.wait_for("getUpdates", token=token, timeout=90)[0].at for token in tokens]
        all_polling_s = max(first_polls) - started
        for process in processes:
            assert process.poll() is None, "a replica exited before it was stopped"
            process.send_signal(signal.SIGTERM)
        results = finish(processes, timeout=30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert [code for code, _ in results] == [0] * REPLICAS, "\n".join(err[-1500:] for code, err in results if code)
    applied = Counter(str(event["revision"]) for _, err in results for event in events_named(err, "migration applied"))
    assert applied == dict.fromkeys(SHIPPED, 1)
    for _, stderr in results:
        names = [event["event"] for event in json_lines(stderr)]
        assert names.index("configuration loaded") < names.index("schema ready") < names.index("polling started")
        assert "bot stopped" in names
    assert versions(url) == [HEAD]
    schema_ready_s = max(seconds_after(stderr, "schema ready", wall) for _, stderr in results)
    print(f"\n[{backend}] {REPLICAS} concurrent starts: all at head after {schema_ready_s:.2f}s, "
          f"all polling after {all_polling_s:.2f}s")


@pytest.mark.slow
def test_one_start_baseline_time_to_polling(postgres_url: URL, project: Path, telegram: FakeTelegram) -> None:
    """A single production start on an empty database polls, and stops with exit 0 (baseline for 8 at once)."""
    token = replica_token(99)
    env = clean_env(ENV="production", DATABASE_URL=plain(postgres_url), BOT_TOKEN=token,
                    TELEGRAM_API_URL=telegram.url, SHUTDOWN_TIMEOUT="2")
    started, wall = time.monotonic(), time.time()
    process = spawn(project, "start", env=env)
    try:
        polling_s = telegram.wait_for("getUpdates", token=token, timeout=60)[0].at - started
        process.send_signal(signal.SIGTERM)
        (code, stderr), = finish([process], timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == 0, stderr[-1500:]
    assert [event["revision"] for event in events_named(stderr, "migration applied")] == list(SHIPPED)
    print(f"\n[postgres_url] 1 start: at head after {seconds_after(stderr, 'schema ready', wall):.2f}s, "
          f"polling after {polling_s:.2f}s")
