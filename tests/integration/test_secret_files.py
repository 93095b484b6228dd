"""BOT_TOKEN_FILE / DATABASE_URL_FILE (Docker and Kubernetes secrets) and the other deployment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.errors import ConfigError
from bot.settings.loading import load_config
from tests.support.commands import run_invoke
from tests.support.environment import TOKEN, clean_env, plain
from tests.support.logs import events_named
from tests.support.revisions import HEAD


def test_secret_files_supply_the_token_and_the_database_url(tmp_path: Path, sqlite_url: URL) -> None:
    """Values are read from the files (trailing newline stripped) and stay masked like the plain variables."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "url").write_text(plain(sqlite_url) + "\n")
    config = load_config({"BOT_TOKEN_FILE": str(tmp_path / "token"), "DATABASE_URL_FILE": str(tmp_path / "url")})
    assert config.require_bot_token().reveal() == TOKEN
    assert config.database_url.database == sqlite_url.database
    assert TOKEN not in repr(config) and TOKEN.split(":")[1] not in str(config.summary())


@pytest.mark.parametrize(("variables", "message"), [
    ({"BOT_TOKEN": TOKEN, "BOT_TOKEN_FILE": "{dir}/token"}, "both BOT_TOKEN and BOT_TOKEN_FILE are set"),
    ({"BOT_TOKEN_FILE": "{dir}/missing"}, "BOT_TOKEN_FILE points at .*missing, which does not exist"),
    ({"DATABASE_URL_FILE": "{dir}/empty"}, "DATABASE_URL_FILE .*empty is empty"),
    ({"BOT_TOKEN_FILE": "{dir}/bad"}, "BOT_TOKEN is malformed"),
    ({"BOT_TOKEN_FILE": "{dir}"}, "BOT_TOKEN_FILE .* cannot be read"),
])
def test_secret_file_mistakes_are_clear_config_errors(tmp_path: Path, variables: dict[str, str],
                                                      message: str) -> None:
    """Both sources, a missing, empty, unreadable or malformed file: one ConfigError naming the variable."""
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "bad").write_text("not-a-token")
    environ = {key: value.format(dir=tmp_path) for key, value in variables.items()}
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(environ)
    assert raised.value.exit_code == 2 and TOKEN.split(":")[1] not in str(raised.value)


@pytest.mark.slow
def test_database_url_file_works_end_to_end(project: Path, tmp_path: Path, sqlite_url: URL) -> None:
    """`invoke migrate` with DATABASE_URL_FILE migrates the database the file names."""
    secret = tmp_path / "database_url"
    secret.write_text(plain(sqlite_url))
    result = run_invoke(project, "migrate", env=clean_env(DATABASE_URL_FILE=str(secret)))
    assert result.returncode == 0, result.stderr
    assert events_named(result.stderr, "migrations complete")[0]["revision"] == HEAD
    assert Path(sqlite_url.database or "").exists()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("MIGRATE_ON_START", "maybe", "not a yes/no value"),
    ("HEALTH_PORT", "0", "is not a port"),
    ("HEALTH_HOST", "http://0.0.0.0", "not a listen address"),
    ("SHUTDOWN_TIMEOUT", "-1", "not a number of seconds"),
    ("ADMIN_IDS", "1,,2", "not a Telegram user id"),
    ("TELEGRAM_PROXY", "ftp://proxy:21", "TELEGRAM_PROXY is malformed"),
])
def test_deployment_variables_are_validated(name: str, value: str, message: str) -> None:
    """Each new variable rejects a bad value with a ConfigError that names it."""
    with pytest.raises(ConfigError, match=message):
        load_config({name: value})


def test_deployment_variable_defaults() -> None:
    """Production migrates on start, development does not; health is off; proxies are masked in the summary."""
    production = load_config({"ENV": "production"})
    assert production.migrate_on_start and production.health_port is None and production.health_host == "127.0.0.1"
    assert not load_config({}).migrate_on_start
    assert not load_config({"ENV": "production", "MIGRATE_ON_START": "false"}).migrate_on_start
    proxied = load_config({"TELEGRAM_PROXY": "socks5://user:hunter22@10.0.0.1:1080", "ADMIN_IDS": "5, -100123, 5"})
    assert proxied.summary()["telegram_proxy"] == "socks5://***@10.0.0.1:1080"
    assert "hunter22" in proxied.secrets() and proxied.admin_ids == (5, -100123)
