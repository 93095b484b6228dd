"""`invoke doctor`: masked configuration and verdicts for the database and the Bot API."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.commands import cli
from bot.commands.doctor import diagnose, raise_on_failure, render_table
from bot.errors import CheckFailed
from bot.settings.loading import load_config
from tests.support.commands import run_invoke, run_task
from tests.support.environment import TOKEN, clean_env, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.proxies import ConnectProxy


@pytest.mark.slow
def test_doctor_json_reports_config_database_and_bot_api(project: Path, telegram: FakeTelegram) -> None:
    """--json prints one document: masked config, pending revisions as a warning, getMe ok; exit 0."""
    telegram.webhooks[TOKEN] = {"url": "https://old.example.com/hook"}
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url, ADMIN_IDS="11,22",
                    WEBHOOK_SECRET="never-printed-secret")
    assert run_invoke(project, "migrate", "--to", "0001", env=env).returncode == 0
    result = run_invoke(project, "doctor", "--json", env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    checks = {check["name"]: check for check in document["checks"]}
    assert document["ok"] is True
    assert document["configuration"]["bot_token"] == "123456789:***"
    assert document["configuration"]["admin_ids"] == 2 and document["configuration"]["migrate_on_start"] is True
    assert checks["database"]["verdict"] == "warn" and checks["database"]["data"]["pending"][0] == "0002"
    assert checks["bot api"]["verdict"] == "ok" and checks["bot api"]["data"]["username"] == "test_bot"
    assert checks["webhook"]["verdict"] == "warn" and "old.example.com" in checks["webhook"]["detail"]
    for secret in (TOKEN.split(":")[1], "never-printed-secret"):
        assert secret not in result.stdout and secret not in result.stderr


def test_doctor_fails_on_a_rejected_token_and_an_unreachable_database(telegram: FakeTelegram) -> None:
    """A 401 from getMe and a refused database are failures (exit 7), each with its own fix."""
    telegram.fail_methods["getMe"] = (401, "Unauthorized")
    config = load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url, "DB_WAIT_TIMEOUT": "0.5",
                          "DATABASE_URL": "postgresql://bot:pw-secret@127.0.0.1:1/bot"})
    findings = {finding.name: finding for finding in diagnose(config)}
    assert findings["bot api"].verdict == "fail" and "rejected BOT_TOKEN" in findings["bot api"].detail
    assert findings["database"].verdict == "fail" and "127.0.0.1:1/bot" in findings["database"].detail
    table = render_table(config, list(findings.values()))
    assert "FAIL" in table and "pw-secret" not in table and TOKEN.split(":")[1] not in table
    with pytest.raises(CheckFailed, match="bot api"):
        raise_on_failure(list(findings.values()))


def test_doctor_is_ok_at_head_and_fails_without_a_token(sqlite_url: URL, telegram: FakeTelegram) -> None:
    """A migrated database with a working token is all ok; without BOT_TOKEN start would refuse, so doctor fails."""
    from bot.migrate.api import upgrade

    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url})
    upgrade(config)
    findings = {finding.name: finding for finding in diagnose(config)}
    assert findings["database"].verdict == "ok" and "at head" in findings["database"].detail
    assert findings["bot api"].verdict == "ok"
    raise_on_failure(list(findings.values()))
    without_token = {finding.name: finding for finding in diagnose(replace(config, bot_token=None))}
    assert without_token["bot api"].verdict == "fail" and "BOT_TOKEN is not set" in without_token["bot api"].detail
    with pytest.raises(CheckFailed, match="bot api"):
        raise_on_failure(list(without_token.values()))


@pytest.mark.parametrize(("variables", "code", "verdict"), [
    ({"ENV": "production", "BOT_TOKEN": ""}, 7, {"bot api": "fail", "database": "warn"}),
    ({"ENV": "development"}, 7, {"bot api": "ok", "database": "fail"}),
    ({"ENV": "production", "MIGRATE_ON_START": "false"}, 7, {"bot api": "ok", "database": "fail"}),
    ({"ENV": "production"}, 0, {"bot api": "ok", "database": "warn"}),
], ids=["production-without-token", "development-pending", "release-step-pending", "production-migrates"])
def test_doctor_exits_7_exactly_when_start_would_refuse(
        variables: dict[str, str], code: int, verdict: dict[str, str], sqlite_url: URL, telegram: FakeTelegram,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing token, or pending revisions that start will not apply, fail the gate (exit 7); otherwise exit 0."""
    from bot.migrate.api import upgrade

    upgrade(load_config({"DATABASE_URL": plain(sqlite_url)}), to="0001")
    environment = {"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                   **variables}
    for name, value in environment.items():
        if value:
            monkeypatch.setenv(name, value)
    assert run_task(lambda: cli.doctor(as_json=True)) == code
    checks = {check["name"]: check["verdict"] for check in json.loads(capsys.readouterr().out)["checks"]}
    assert {name: checks[name] for name in verdict} == verdict


def test_doctor_and_the_bot_reach_the_bot_api_through_telegram_proxy(telegram: FakeTelegram) -> None:
    """With TELEGRAM_PROXY set, doctor's getMe and aiogram's getMe both go through the proxy's tunnel."""
    import asyncio

    proxy = ConnectProxy()
    config = load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "TELEGRAM_PROXY": f"http://127.0.0.1:{proxy.port}"})
    findings = {finding.name: finding for finding in diagnose(config)}
    assert findings["bot api"].verdict == "ok", findings["bot api"]
    assert proxy.tunnels and proxy.tunnels[0] == f"127.0.0.1:{telegram.port}"

    async def get_me() -> str | None:
        from bot.telegram.app import build_bot

        bot = build_bot(config)
        try:
            return (await bot.get_me()).username
        finally:
            await bot.session.close()

    tunnels_before = len(proxy.tunnels)
    assert asyncio.run(get_me()) == "test_bot"
    assert len(proxy.tunnels) > tunnels_before
    proxy.server.close()


WEBHOOK = {"WEBHOOK_URL": "https://bot.example.com/hook", "WEBHOOK_SECRET": "w3bhook-secret-value"}
# variable -> (a non-default value, the other variables it needs to take effect)
NON_DEFAULTS: dict[str, tuple[str, dict[str, str]]] = {
    "ENV": ("production", {}),
    "DATABASE_URL": ("postgresql://bot:pw-secret-1@db.example.com:5433/app", {}),
    "DATABASE_URL_FILE": ("mysql://bot:pw-secret-2@db.example.com/app", {}),
    "BOT_TOKEN": (TOKEN, {}),
    "BOT_TOKEN_FILE": (TOKEN, {}),
    "TELEGRAM_API_URL": ("http://127.0.0.1:8081", {}),
    "LOG_LEVEL": ("DEBUG", {}),
    "LOG_FORMAT": ("console", {}),
    "MIGRATION_LOCK_TIMEOUT": ("12", {}),
    "DB_WAIT_TIMEOUT": ("7", {}),
    "BOT_API_WAIT_TIMEOUT": ("9", {}),
    "BACKUP_DIR": ("/srv/bot-backups", {}),
    "BACKUP_KEEP": ("3", {}),
    "BACKUP_BEFORE_MIGRATE": ("true", {}),
    "ALLOW_DESTRUCTIVE_MIGRATIONS": ("true", {}),
    "DDL_LOCK_TIMEOUT": ("2", {}),
    "DDL_STATEMENT_TIMEOUT": ("60", {}),
    "DDL_LOCK_RETRIES": ("0", {}),
    "ALEMBIC_CONFIG": ("tests/support/review_corpus.py", {}),  # any file that exists: it is only shown
    "MIGRATE_ON_START": ("true", {}),
    "WEBHOOK_URL": (WEBHOOK["WEBHOOK_URL"], {"WEBHOOK_SECRET": WEBHOOK["WEBHOOK_SECRET"]}),
    "WEBHOOK_SECRET": (WEBHOOK["WEBHOOK_SECRET"], {}),
    "WEBHOOK_HOST": ("127.0.0.2", WEBHOOK),
    "WEBHOOK_PORT": ("9000", WEBHOOK),
    "PORT": ("9001", WEBHOOK),
    "HEALTH_PORT": ("8081", {}),
    "HEALTH_HOST": ("0.0.0.0", {"HEALTH_PORT": "8081"}),
    "ADMIN_IDS": ("11,22", {}),
    "SHUTDOWN_TIMEOUT": ("20", {}),
    "TELEGRAM_PROXY": ("socks5://user:proxy-secret@127.0.0.1:1080", {}),
    "TELEGRAM_PACING": ("false", {}),
    "TELEGRAM_RETRY_MAX_WAIT": ("5", {}),
}


def test_doctor_shows_every_setting_and_secrets_only_as_set(tmp_path: Path) -> None:
    """Changing any variable changes its row in doctor's table and JSON; no secret value is ever printed."""
    from bot.commands.doctor import Finding, render_json
    from bot.settings.table import SETTINGS

    assert set(NON_DEFAULTS) == {setting.name for setting in SETTINGS}
    findings = [Finding("database", "ok", "reachable")]
    secrets = ("pw-secret-1", "pw-secret-2", TOKEN.split(":")[1], "w3bhook-secret-value", "proxy-secret")
    for variable in SETTINGS:
        value, needs = NON_DEFAULTS[variable.name]
        if variable.name.endswith("_FILE"):
            (tmp_path / variable.name).write_text(value)
            value = str(tmp_path / variable.name)
        before, after = (load_config(environ, stderr_is_terminal=False)
                         for environ in (needs, {**needs, variable.name: value}))
        shown = [json.loads(render_json(config, findings))["configuration"][variable.shown_as]
                 for config in (before, after)]
        assert shown[0] != shown[1], f"{variable.name} changes nothing doctor shows"
        table = render_table(after, findings)
        rows = [[line.split() for line in render_table(config, findings).splitlines()
                 if line.strip().startswith(variable.shown_as)] for config in (before, after)]
        assert rows[1] and rows[0] != rows[1], f"{variable.name} changes no row of doctor's table"
        document = render_json(after, findings)
        assert not [secret for secret in secrets if secret in table or secret in document]
    secret_set = load_config(WEBHOOK, stderr_is_terminal=False).summary()
    assert secret_set["webhook_secret"] == "set" and load_config({}).summary()["webhook_secret"] == "unset"


def test_health_listen_names_the_shared_webhook_listener() -> None:
    """HEALTH_PORT equal to WEBHOOK_PORT is served by the webhook's listener, so that address is what is shown."""
    shared = load_config({**WEBHOOK, "WEBHOOK_PORT": "8443", "HEALTH_PORT": "8443"}, stderr_is_terminal=False)
    assert shared.summary()["health_listen"] == "0.0.0.0:8443"
    apart = load_config({**WEBHOOK, "WEBHOOK_PORT": "8443", "HEALTH_PORT": "8081"}, stderr_is_terminal=False)
    assert apart.summary()["health_listen"] == "127.0.0.1:8081"
    polling = load_config({"WEBHOOK_PORT": "8443", "HEALTH_PORT": "8443"}, stderr_is_terminal=False)
    assert polling.summary()["health_listen"] == "127.0.0.1:8443"
