"""Configuration from the environment, validated once into frozen data."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL

from bot.database.urls import database_label, default_database_url, describe_url, normalize_database_url
from bot.errors import ConfigError
from bot.paths import ENV_FILE

ENVIRONMENTS = ("development", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")
TOKEN_PATTERN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")


class Secret:
    """A string that never shows itself in a repr, a log line or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Config:
    """Everything the toolkit reads from the environment, already validated."""

    env: str = "development"
    database_url: URL = field(default_factory=default_database_url)
    bot_token: Secret | None = None
    telegram_api_url: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    migration_lock_timeout: float = 300.0
    db_wait_timeout: float = 60.0

    @property
    def is_production(self) -> bool:
        """Production migrates on start; development refuses a stale schema instead."""
        return self.env == "production"

    def require_bot_token(self) -> Secret:
        """The token, or a configuration error for the commands that talk to Telegram."""
        if self.bot_token is None:
            raise ConfigError(
                "BOT_TOKEN is not set",
                "starting the bot needs the token @BotFather gave you",
                "set BOT_TOKEN in the environment or in .env",
            )
        return self.bot_token

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed, for the log redactor."""
        values = [self.bot_token.reveal() if self.bot_token else "", self.database_url.password or ""]
        return tuple(value for value in values if len(str(value)) >= 4)

    def summary(self) -> dict[str, object]:
        """What the operator needs to see at startup, with every secret masked."""
        return {
            "environment": self.env,
            "database": describe_url(self.database_url),
            "database_name": database_label(self.database_url),
            "bot_token": mask_token(self.bot_token),
            "telegram_api_url": self.telegram_api_url or "https://api.telegram.org",
            "log_level": self.log_level,
            "log_format": self.log_format,
        }


def mask_token(token: Secret | None) -> str | None:
    """Keep the bot id (public) and hide the secret half of a token."""
    if token is None:
        return None
    bot_id, _, _ = token.reveal().partition(":")
    return f"{bot_id}:***"


def load_env_file(path: Path = ENV_FILE, environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Fill missing variables from the project's .env; real environment variables win."""
    from dotenv import dotenv_values

    target = os.environ if environ is None else environ
    if not path.is_file():
        return False
    for key, value in dotenv_values(path).items():
        if value is not None and key not in target:
            target[key] = value
    return True


def load_config(environ: Mapping[str, str] | None = None, *, stderr_is_terminal: bool | None = None) -> Config:
    """Validate the environment into a Config, or raise ConfigError naming the variable."""
    environ = os.environ if environ is None else environ
    if stderr_is_terminal is None:
        stderr_is_terminal = sys.stderr.isatty()
    env = _choice(environ, "ENV", ENVIRONMENTS, "development", lower=True)
    default_format = "console" if env == "development" and stderr_is_terminal else "json"
    raw_url = _optional(environ, "DATABASE_URL")
    return Config(
        env=env,
        database_url=normalize_database_url(raw_url) if raw_url is not None else default_database_url(),
        bot_token=_token(environ),
        telegram_api_url=_api_url(environ),
        log_level=_choice(environ, "LOG_LEVEL", LOG_LEVELS, "INFO", lower=False),
        log_format=_choice(environ, "LOG_FORMAT", LOG_FORMATS, default_format, lower=True),
        migration_lock_timeout=_seconds(environ, "MIGRATION_LOCK_TIMEOUT", 300.0),
        db_wait_timeout=_seconds(environ, "DB_WAIT_TIMEOUT", 60.0),
    )


def logging_settings(environ: Mapping[str, str], *, stderr_is_terminal: bool) -> tuple[str, str]:
    """Best-effort level and format, read before validation so config errors are logged right too."""
    env = environ.get("ENV", "").strip().lower()
    fmt = environ.get("LOG_FORMAT", "").strip().lower()
    if fmt not in LOG_FORMATS:
        fmt = "console" if env in ("", "development") and stderr_is_terminal else "json"
    level = environ.get("LOG_LEVEL", "").strip().upper()
    return (level if level in LOG_LEVELS else "INFO"), fmt


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    """A variable's value; set-but-empty is an error, since it usually means a broken deploy."""
    value = environ.get(name)
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(f"{name} is set but empty", "an empty value is never meaningful here",
                          f"give {name} a value or remove it")
    return value


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str, *, lower: bool) -> str:
    """One of a fixed set of words, compared without case or surrounding blanks."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    value = raw.strip().lower() if lower else raw.strip().upper()
    if value not in allowed:
        raise ConfigError(f"{name}={raw.strip()!r} is not allowed", f"it must be one of {', '.join(allowed)}",
                          f"set {name} to one of those")
    return value


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """A non-negative number of seconds."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw.strip()!r} is not a number of seconds", "it must be a number ≥ 0",
                          f"set {name} to e.g. {int(default)}")
    return value


def _token(environ: Mapping[str, str]) -> Secret | None:
    """The bot token, checked for shape so a typo fails before anything connects."""
    raw = _optional(environ, "BOT_TOKEN")
    if raw is None:
        return None
    token = raw.strip()
    if not TOKEN_PATTERN.match(token):
        raise ConfigError("BOT_TOKEN is malformed",
                          "a token is digits, a colon, then at least 20 letters, digits, '_' or '-'",
                          "copy the token again from @BotFather")
    return Secret(token)


def _api_url(environ: Mapping[str, str]) -> str | None:
    """Base address of a Bot API server, without a trailing slash."""
    raw = _optional(environ, "TELEGRAM_API_URL")
    if raw is None:
        return None
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("TELEGRAM_API_URL is malformed", "it must be an http:// or https:// address with a host",
                          "set it to e.g. http://127.0.0.1:8081")
    return value
