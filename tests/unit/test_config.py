"""Configuration parsing: defaults, normalization and every kind of bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot import paths
from bot.commands import cli
from bot.errors import ConfigError, ExitCode
from bot.paths import DEFAULT_SQLITE_FILE, PROJECT_ROOT
from bot.redact import Secret
from bot.settings.config import Config
from bot.settings.loading import load_config, load_env_file
from bot.settings.table import mask_token
from tests.support.commands import run_invoke, run_task
from tests.support.environment import clean_env
from tests.support.logs import json_lines

TOKEN = "123456789:AAH1testtokenvalue-abcdefghijklmnop"


def load(**environ: str) -> Config:
    return load_config(environ, stderr_is_terminal=False)


def test_defaults_are_development_sqlite_and_json_off_terminal() -> None:
    """With nothing set, the bot runs in development on data/bot.db and logs JSON when stderr is not a TTY."""
    config = load()
    assert config.env == "development" and not config.is_production
    assert config.database_url.drivername == "sqlite+aiosqlite"
    assert config.database_url.database == str(DEFAULT_SQLITE_FILE)
    assert config.log_format == "json" and config.log_level == "INFO"


def test_console_logs_on_a_terminal_in_development_only() -> None:
    """Development on a terminal gets console logs; production always gets JSON."""
    assert load_config({}, stderr_is_terminal=True).log_format == "console"
    assert load_config({"ENV": "production"}, stderr_is_terminal=True).log_format == "json"


def test_env_ignores_case_and_blanks() -> None:
    """ENV is compared without case or surrounding blanks."""
    assert load(ENV="  Production ").is_production


@pytest.mark.parametrize("value", ["prod", "staging", "dev"])
def test_unknown_env_is_an_error_naming_the_allowed_values(value: str) -> None:
    """An unknown ENV never silently falls back to development."""
    with pytest.raises(ConfigError) as caught:
        load(ENV=value)
    assert "development, production" in str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("name", ["ENV", "DATABASE_URL", "BOT_TOKEN", "LOG_LEVEL", "LOG_FORMAT",
                                  "TELEGRAM_API_URL", "MIGRATION_LOCK_TIMEOUT", "DB_WAIT_TIMEOUT"])
def test_empty_values_are_errors(name: str) -> None:
    """A variable that is set but empty is reported by name instead of being half-used."""
    with pytest.raises(ConfigError, match=name):
        load(**{name: "  "})


def test_relative_sqlite_path_is_anchored_at_the_project_root() -> None:
    """sqlite:///relative.db means a file under the project root, whatever the current directory."""
    assert load(DATABASE_URL="sqlite:///var/x.db").database_url.database == str(PROJECT_ROOT / "var" / "x.db")
    assert load(DATABASE_URL="sqlite:////tmp/abs.db").database_url.database == "/tmp/abs.db"


@pytest.mark.parametrize(("raw", "driver"), [
    ("postgres://u:p@h:5432/db", "postgresql+psycopg"),
    ("postgresql://u:p@h/db", "postgresql+psycopg"),
    ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
    ("mysql://u:p@h/db", "mysql+aiomysql"),
    ("mariadb://u:p@h/db", "mariadb+aiomysql"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
])
def test_platform_urls_are_normalized_to_shipped_drivers(raw: str, driver: str) -> None:
    """The URL forms hosting platforms hand out map onto the drivers we ship."""
    assert load(DATABASE_URL=raw).database_url.drivername == driver


def test_password_with_special_characters_survives() -> None:
    """A percent-encoded password with % @ : / decodes to the real password and never shows in reprs."""
    config = load(DATABASE_URL="postgresql://bot:p%25a%40s%3As%2Fw@db.example:5432/bot?sslmode=require")
    assert config.database_url.password == "p%a@s:s/w"
    assert config.database_url.query["sslmode"] == "require"
    assert "p%a@s:s/w" not in repr(config) and "p%25a" not in repr(config)
    assert "p%a@s:s/w" not in str(config.summary())


@pytest.mark.parametrize(("raw", "fragment"), [
    ("not a url", "malformed"),
    ("mongodb://h/db", "unsupported scheme"),
    ("postgresql+asyncpg://h/db", "does not ship"),
    ("postgresql://h", "names no database"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
])
def test_bad_database_urls_are_explained(raw: str, fragment: str) -> None:
    """Malformed, unsupported or in-memory URLs fail with a line that says why."""
    with pytest.raises(ConfigError, match=fragment):
        load(DATABASE_URL=raw)


@pytest.mark.parametrize("token", ["abc:defghijklmnopqrstuvwxyz", "123456:short", "123456 AAH1testtokenvalue-abcdefg",
                                   "123456:AAH1testtoken value-abcdefghij"])
def test_malformed_token_is_rejected_without_echoing_it(token: str) -> None:
    """A token of the wrong shape is an error whose message does not contain the token."""
    with pytest.raises(ConfigError) as caught:
        load(BOT_TOKEN=token)
    assert token not in str(caught.value)


def test_token_is_masked_everywhere() -> None:
    """The token's secret half appears in no repr and no summary."""
    config = load(BOT_TOKEN=TOKEN)
    secret_half = TOKEN.split(":")[1]
    assert secret_half not in repr(config) and secret_half not in str(config.summary())
    assert mask_token(config.bot_token) == "123456789:***"
    assert config.require_bot_token().reveal() == TOKEN
    assert repr(Secret("x")) == "Secret('***')"


def test_missing_token_is_an_error_only_when_required() -> None:
    """Commands other than start run without BOT_TOKEN; start asks for it clearly."""
    with pytest.raises(ConfigError, match="BOT_TOKEN is not set"):
        load().require_bot_token()


@pytest.mark.parametrize(("name", "value"), [("LOG_LEVEL", "LOUD"), ("LOG_FORMAT", "xml"),
                                             ("TELEGRAM_API_URL", "ftp://x"), ("MIGRATION_LOCK_TIMEOUT", "-1"),
                                             ("DB_WAIT_TIMEOUT", "soon")])
def test_other_bad_values(name: str, value: str) -> None:
    """Each validated variable names itself in its error."""
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


def test_env_file_fills_gaps_but_real_variables_win(tmp_path: Path) -> None:
    """.env supplies missing variables; variables already in the environment are kept."""
    env_file = tmp_path / ".env"
    env_file.write_text("ENV=production\nLOG_LEVEL=DEBUG\n")
    environ = {"ENV": "development"}
    assert load_env_file(env_file, environ)
    assert environ == {"ENV": "development", "LOG_LEVEL": "DEBUG"}
    assert not load_env_file(tmp_path / "missing.env", environ)


@pytest.mark.parametrize(("content", "line", "names"), [
    ('ENV=production\nBOT_TOKEN="123456789:AAHsecretQXJ\nLOG_LEVEL=INFO\n', 2, "BOT_TOKEN"),
    ("ENV=production\nLOG_LEVEL=INFO\nthis is not a statement\n", 3, None),
    ("ENV=production\nA=1\nB='unclosed\nC=2\n", 3, "B"),
])
def test_env_file_that_cannot_be_parsed_is_one_json_line_and_exit_2(
        content: str, line: int, names: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A .env line python-dotenv cannot parse stops the run with exit 2: one JSON line with its number, no value."""
    env_file = tmp_path / ".env"
    env_file.write_text(content)
    monkeypatch.setattr(paths, "ENV_FILE", env_file)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # production's JSON must win over a terminal's console
    assert run_task(cli.status) == 2
    err = capfd.readouterr().err
    events = json_lines(err)  # every line is JSON, python-dotenv's own plain-text warning included
    assert [event["event"] for event in events] == ["command failed"]
    assert events[0]["line"] == line and f".env line {line} cannot be parsed" in str(events[0]["error"])
    assert (f"sets {names}" in str(events[0]["error"])) if names else "sets" not in str(events[0]["error"])
    assert "QXJ" not in err and "unclosed" not in err
    assert not (tmp_path / "data").exists()


def test_env_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    """A .env saved in another encoding is a ConfigError naming the line, not a UnicodeDecodeError traceback."""
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"ENV=production\nADMIN_IDS=1\nWEBHOOK_SECRET=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"\.env line 3 is not UTF-8"):
        load_env_file(env_file, {})


@pytest.mark.slow
def test_env_file_problem_in_a_real_run_is_json_from_the_first_line(project: Path) -> None:
    """`invoke status` with a broken .env in production prints only JSON on stderr and exits 2."""
    (project / ".env").write_text('ENV=production\nDATABASE_URL="sqlite:///data/x.db\n')
    result = run_invoke(project, "status", env=clean_env())
    assert result.returncode == 2, result.stderr
    events = json_lines(result.stderr)
    assert len(events) == 1 and events[0]["line"] == 2 and "DATABASE_URL" in str(events[0]["error"])
    assert not (project / "data").exists()
