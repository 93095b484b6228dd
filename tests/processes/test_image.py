"""The image's HEALTHCHECK probe, and the Dockerfile's read-only and any-uid-in-group-0 layout."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiohttp import web

from bot.probe import liveness_url
from bot.telegram.listener.health import Check, RuntimeState, add_health_routes
from tests.support.environment import ROOT, clean_env, free_port


@contextmanager
def health_listener(host: str, port: int) -> Iterator[None]:
    """The bot's real health routes, listening on host:port from a thread with its own loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner: list[web.AppRunner] = []

    async def database() -> Check:
        return Check(True, "")

    async def start() -> None:
        app = web.Application()
        add_health_routes(app, RuntimeState(mode="polling", role="leader"), database)
        runner.append(web.AppRunner(app))
        await runner[0].setup()
        await web.TCPSite(runner[0], host, port).start()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10), "the health listener did not start"
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def run_probe(**variables: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot.probe` exactly as the HEALTHCHECK runs it, with these variables."""
    return subprocess.run([sys.executable, "-m", "bot.probe"], cwd=ROOT, env=clean_env(**variables),
                          capture_output=True, text=True, timeout=30)


@pytest.mark.slow
def test_the_probe_asks_livez_where_health_host_listens() -> None:
    """Bound to 127.0.0.2 the probe passes there (127.0.0.1 would fail); 0.0.0.0 is probed on loopback."""
    port = free_port()
    with health_listener("127.0.0.2", port):
        alive = run_probe(HEALTH_PORT=str(port), HEALTH_HOST="127.0.0.2")
        loopback = run_probe(HEALTH_PORT=str(port))
    assert alive.returncode == 0 and f"http://127.0.0.2:{port}/livez answered 200" in alive.stdout
    assert loopback.returncode == 1 and f"http://127.0.0.1:{port}/livez did not answer" in loopback.stderr
    with health_listener("0.0.0.0", port):
        anywhere = run_probe(HEALTH_PORT=str(port), HEALTH_HOST="0.0.0.0")
    assert anywhere.returncode == 0, anywhere.stderr
    unset = run_probe()
    assert unset.returncode == 0 and "HEALTH_PORT is not set" in unset.stdout
    assert liveness_url({"HEALTH_PORT": "8081", "HEALTH_HOST": "::"}) == "http://[::1]:8081/livez"
    assert liveness_url({"HEALTH_PORT": "8081", "HEALTH_HOST": "fd00::5"}) == "http://[fd00::5]:8081/livez"


def test_the_dockerfile_runs_as_uid_10001_in_group_0_with_only_data_and_backups_writable() -> None:
    """USER 10001:0; /app/data and /app/backups are 10001:0 0770 volumes; the HEALTHCHECK is the probe module."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)[-1] == "10001:0"
    assert "chown 10001:0 /app/data /app/backups" in text and "chmod 0770 /app/data /app/backups" in text
    assert 'VOLUME ["/app/data", "/app/backups"]' in text
    assert re.search(r'^HEALTHCHECK .* CMD \["python", "-m", "bot.probe"\]$', text, flags=re.MULTILINE)
    assert "python -m bot.migrate.fastpath" in text, "the revision manifest is built into the image"
