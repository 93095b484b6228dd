"""M1 helper: the time per update with the metrics and the per-update log context, and without them, in one process.

Two dispatchers and two bots share one event loop, one SQLite database and one fake Bot API (in a process of its
own, so its work is not counted); they differ only in the observing middlewares (UpdateObserver + HandlerLabel on
the dispatcher, ApiCallObserver on the bot's session). Batches of the same updates alternate between them (the
order flipped every round), each update awaited in turn. Prints JSON: per text and side, the CPU microseconds
this process spent per update in each batch, and the wall microseconds.

On a machine shared with other work, CPU time per batch still moves by tens of percent. Under callgrind
(`--instructions`) each batch is also measured in instructions executed, which other processes cannot change:
the process starts with instrumentation off (imports stay fast), switches it on for the batches, and reads the
counters of every thread through `callgrind_control` before and after each batch.

Run by bench/run.py (goal M1); alone: python bench/update_cost.py UPDATES ROUNDS [--instructions]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiogram import Bot, Dispatcher  # noqa: E402 - after the path set-up above
from aiogram.types import Update  # noqa: E402
from sqlalchemy.ext.asyncio import async_sessionmaker  # noqa: E402

from bot.data.engine import create_engine  # noqa: E402
from bot.logs import configure_logging  # noqa: E402
from bot.migrate.api import upgrade  # noqa: E402
from bot.settings.loading import load_config  # noqa: E402
from bot.telegram.app import build_bot, build_dispatcher  # noqa: E402
from bot.telegram.listener.health import RuntimeState  # noqa: E402
from bot.telegram.listener.metrics import BotMetrics  # noqa: E402
from bot.telegram.observe import ApiCallObserver, UpdateObserver  # noqa: E402
from bot.telegram.tracker import HandlerTracker  # noqa: E402

TOKEN = "123456789:AAH1benchtokenvalue-abcdefghijklmnop"
TEXTS = ("/help", "/start")
COUNT_INSTRUCTIONS = "--instructions" in sys.argv
# The fake Bot API in a process of its own: prints its address, serves until terminated.
FAKE_SERVER = ("import threading; from tests.support.fake_telegram import FakeTelegram; "
               "server = FakeTelegram().start(); print(server.url, flush=True); threading.Event().wait()")


def message(update_id: int, text: str, user_id: int) -> dict[str, Any]:
    """A private message update as Telegram sends it."""
    body: dict[str, Any] = {"message_id": update_id, "date": int(time.time()), "text": text,
                            "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
                            "from": {"id": user_id, "is_bot": False, "first_name": "Bench"}}
    if text.startswith("/"):
        body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": body}


def instructions() -> int:
    """Instructions this process has executed so far, all threads, as callgrind counts them (0 outside it)."""
    if not COUNT_INSTRUCTIONS:
        return 0
    shown = subprocess.run(["callgrind_control", "-e", "Ir", str(os.getpid())], capture_output=True, text=True,
                           timeout=120, check=True).stdout
    return sum(int(value.replace(",", "")) for value in re.findall(r"^\s*Th \d+\s+([\d,]+)", shown, re.MULTILINE))


async def batch(dispatcher: Dispatcher, bot: Bot, text: str, updates: int,
                ids: count[int]) -> tuple[float, float, float]:
    """CPU microseconds, wall microseconds and instructions per update, `updates` updates fed one after the other."""
    parsed = [Update.model_validate(message(next(ids), text, 20_000 + number % 200), context={"bot": bot})
              for number in range(updates)]
    counted = instructions()
    cpu, wall = time.process_time(), time.perf_counter()
    for update in parsed:
        await dispatcher.feed_update(bot, update)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / updates * 1e6, wall / updates * 1e6, (instructions() - counted) / updates


async def measure(api_url: str, database: Path, updates: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved batches through the observed and the bare dispatcher."""
    config = load_config({"DATABASE_URL": f"sqlite:///{database}", "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api_url,
                          "ENV": "production"})
    engine = create_engine(config.database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    metrics = BotMetrics(RuntimeState(mode="polling", heads=("0002",), role="leader"))
    observed = (build_dispatcher(sessions, HandlerTracker(), UpdateObserver(metrics)),
                build_bot(config, ApiCallObserver(metrics)))
    bare = (build_dispatcher(sessions, HandlerTracker()), build_bot(config))
    results: dict[str, dict[str, list[float]]] = {
        text: {f"{side}_{unit}": [] for side in ("with", "without") for unit in ("cpu", "wall", "instructions")}
        for text in TEXTS}
    ids = count(1)
    try:
        for text in TEXTS:  # warm-up: register the users, fill the pools and caches
            for dispatcher, bot in (observed, bare):
                await batch(dispatcher, bot, text, updates, ids)
        for round_number in range(rounds):
            for text in TEXTS:
                sides = (("with", observed), ("without", bare))
                for side, (dispatcher, bot) in sides if round_number % 2 == 0 else sides[::-1]:
                    measured = await batch(dispatcher, bot, text, updates, ids)
                    for unit, value in zip(("cpu", "wall", "instructions"), measured, strict=True):
                        results[text][f"{side}_{unit}"].append(value)
    finally:
        for _dispatcher, bot in (observed, bare):
            await bot.session.close()
        await engine.dispose()
    return results


def main() -> None:
    """Set up a throwaway database and the fake Bot API, measure, print JSON."""
    updates, rounds = int(sys.argv[1]), int(sys.argv[2])
    if COUNT_INSTRUCTIONS:
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, timeout=120,
                       check=True)
    configure_logging("INFO", "json")  # production logging: the per-update summary line is filtered out
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        api_url = fake.stdout.readline().strip()
        with tempfile.TemporaryDirectory(prefix="toolkit-g7-") as folder:
            database = Path(folder) / "bench.db"
            upgrade(load_config({"DATABASE_URL": f"sqlite:///{database}"}))
            print(json.dumps(asyncio.run(measure(api_url, database, updates, rounds))))
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
