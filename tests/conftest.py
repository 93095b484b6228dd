"""Shared fixtures: a fresh database per test on each real server, project copies, subprocess helpers."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The suite never writes into the checkout: bytecode (and the fast path's revision manifest, kept beside it) and
# Hypothesis's files go to a folder outside it, set here before anything of the project is imported.
SCRATCH = Path(tempfile.gettempdir()) / f"bot-toolkit-tests-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
sys.pycache_prefix = str(SCRATCH / "pycache")

import pytest  # noqa: E402 - after the bytecode prefix above
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402

from bot.settings import SECRET_FILE_VARIABLES, VARIABLES, Config, load_config  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

set_hypothesis_home_dir(SCRATCH / "hypothesis")
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN = dict(host="127.0.0.1", port=5432, user=os.environ.get("TEST_PG_USER", "postgres"), dbname="postgres")
MARIADB_ADMIN = dict(host="127.0.0.1", port=3306, user="root", password="")
TOOLKIT_VARIABLES = tuple(variable.name for variable in VARIABLES)
TOKEN = "123456789:AAH1testtokenvalue-abcdefghijklmnop"


def server_unavailable(name: str, error: Exception) -> None:
    """Skip visibly outside CI; in CI a missing server is a failure, never a skip."""
    message = f"{name} is unreachable on 127.0.0.1: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: .ci/run must start it)")
    pytest.skip(message)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> URL:
    """A SQLite file of this test's own."""
    return URL.create("sqlite+aiosqlite", database=str(tmp_path / "db" / "bot.db"))


@pytest.fixture
def postgres_url() -> Iterator[URL]:
    """A PostgreSQL database created for this test and dropped after it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        server_unavailable("PostgreSQL", error)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield URL.create("postgresql+psycopg", username=PG_ADMIN["user"], host="127.0.0.1", port=5432, database=name)
    with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb_url() -> Iterator[URL]:
    """A MariaDB database created for this test and dropped after it."""
    import pymysql

    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(**MARIADB_ADMIN, connect_timeout=3, autocommit=True)
    except pymysql.err.OperationalError as error:
        server_unavailable("MariaDB", error)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.close()
    yield URL.create("mariadb+aiomysql", username="root", host="127.0.0.1", port=3306, database=name)
    admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_url(request: pytest.FixtureRequest) -> URL:
    """The same test on each backend."""
    return request.getfixturevalue(f"{request.param}_url" if request.param != "postgresql" else "postgres_url")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def plain(url: URL) -> str:
    """A URL as a user would write it in DATABASE_URL (password included)."""
    return url.render_as_string(hide_password=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project to run real commands in, so a test may edit revisions or .env freely."""
    target = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")  # bot/ and alembic/ hold no data, .env or backups
    for name in ("bot", "alembic"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("alembic.ini", "tasks.py"):
        shutil.copy2(ROOT / name, target / name)
    return target


def clean_env(**variables: str) -> dict[str, str]:
    """The machine's environment without the toolkit's variables, plus the given ones."""
    env = {key: value for key, value in os.environ.items() if key not in TOOLKIT_VARIABLES}
    env.update(variables)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_invoke(project_dir: Path, *args: str, env: dict[str, str], timeout: float = 120,
               cwd: Path | None = None, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` against a project directory as a real subprocess."""
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(project_dir), *args],
                          cwd=cwd or project_dir, env=env, capture_output=True, text=True, timeout=timeout,
                          input=input_text)


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Parse every stderr line as JSON (fails the test on the first line that is not)."""
    events = []
    for line in stderr.splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise AssertionError(f"not a JSON log line: {line!r}") from error
    return events


def events_named(stderr: str, name: str) -> list[dict[str, object]]:
    """The JSON log events with this event name."""
    return [event for event in json_lines(stderr) if event.get("event") == name]


def variables_the_code_reads() -> set[str]:
    """Every variable name load_config reads: literal names passed with `environ`, plus each secret's NAME_FILE."""
    tree = ast.parse((ROOT / "bot" / "settings.py").read_text())
    names = {f"{name}_FILE" for name in SECRET_FILE_VARIABLES} | set(SECRET_FILE_VARIABLES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) \
                and node.args[0].id == "environ" and isinstance(node.args[1], ast.Constant):
            names.add(str(node.args[1].value))
    return names


def http_json(url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """GET a health endpoint and decode its JSON body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def scrape_metrics(url: str) -> dict[str, Metric]:
    """GET /metrics over HTTP and parse it with prometheus_client's own parser: family name -> family."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def metric_value(families: dict[str, Metric], sample: str, **labels: str) -> float | None:
    """The value of one sample (e.g. `bot_updates_received_total`, update_type="message"), None when absent."""
    for family in families.values():
        for found in family.samples:
            if found.name == sample and all(found.labels.get(key) == value for key, value in labels.items()):
                return float(found.value)
    return None


def post_update(url: str, body: dict[str, Any], secret: str | None) -> tuple[int, str]:
    """POST a JSON update the way Telegram does; return the status and body."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def message_update(update_id: int, text: str, user_id: int = 901) -> dict[str, Any]:
    """A private text message update, as Telegram would post it."""
    message = {"message_id": update_id, "date": int(time.time()), "text": text,
               "chat": {"id": user_id, "type": "private", "first_name": "Wu"},
               "from": {"id": user_id, "is_bot": False, "first_name": "Wu"}}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


def in_process_bot(database: URL, telegram: FakeTelegram, **variables: str) -> Config:
    """The configuration of a bot run in this process on this database and fake Bot API, the schema at head."""
    from bot.migrate.api import upgrade  # loads Alembic: only for the tests that run a bot

    config = load_config({"DATABASE_URL": plain(database), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          **variables})
    upgrade(config)
    return config


def in_process_webhook_bot(database: URL, telegram: FakeTelegram, secret: str, path: str,
                           **variables: str) -> tuple[Config, str, int]:
    """An in-process webhook bot's configuration, its webhook address and its port (health on the same port)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{path}"
    config = in_process_bot(database, telegram, WEBHOOK_URL=url, WEBHOOK_SECRET=secret, WEBHOOK_HOST="127.0.0.1",
                            WEBHOOK_PORT=str(port), HEALTH_PORT=str(port), **variables)
    return config, url, port


def run_in_thread(steps: Callable[[], None]) -> list[BaseException]:
    """Run the test's client side beside an in-process bot's loop; the steps send SIGTERM, or a failure does."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            steps()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            errors.append(error)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=body, daemon=True).start()
    return errors


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """A fake Bot API server on 127.0.0.1 for this test."""
    with FakeTelegram() as server:
        yield server


@pytest.fixture(autouse=True, scope="session")
def _logging_to_stderr() -> None:
    """In-process tests log the way the toolkit does (JSON on stderr), never on stdout."""
    from bot.logs import configure_logging

    configure_logging("INFO", "json")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests never see the developer's own toolkit variables."""
    for name in TOOLKIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def checkout_files() -> set[str] | None:
    """Every untracked or ignored file in the checkout, as `git status --porcelain --ignored` lists them."""
    try:
        listed = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an unpacked archive): nothing to compare
    return {line[3:] for line in listed.splitlines() if line[:2] in ("??", "!!")}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Take stock of the checkout before any test runs."""
    session.config.stash[CHECKOUT_BEFORE] = checkout_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when it left anything new in the checkout (data/, backups/, caches, bytecode...)."""
    before = session.config.stash.get(CHECKOUT_BEFORE, None)
    after = checkout_files()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "the test run wrote into the checkout:\n  " + "\n  ".join(new[:50])
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


CHECKOUT_BEFORE = pytest.StashKey[set[str] | None]()
