"""Configuration from the environment, validated once into frozen data."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

from sqlalchemy.engine import URL

from bot import paths
from bot.data.urls import database_label, default_database_url, describe_url, normalize_database_url
from bot.errors import ConfigError
from bot.paths import ALEMBIC_INI, PROJECT_ROOT

TELEGRAM_API_DEFAULT = "https://api.telegram.org"
ENVIRONMENTS = ("development", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")
TOKEN_PATTERN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
PROXY_SCHEMES = ("http", "https", "socks4", "socks5")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
# Docker/Kubernetes secrets convention: NAME_FILE holds the path of a file with the value.
SECRET_FILE_VARIABLES = ("BOT_TOKEN", "DATABASE_URL")


@dataclass(frozen=True)
class Variable:
    """One environment variable the configuration reads, and the summary key that shows what it set."""

    name: str
    shown_as: str


# Every variable load_config reads. README's table, .env.example and `invoke doctor` are checked against it.
VARIABLES: tuple[Variable, ...] = (
    Variable("ENV", "environment"),
    Variable("DATABASE_URL", "database"),
    Variable("DATABASE_URL_FILE", "database"),
    Variable("BOT_TOKEN", "bot_token"),
    Variable("BOT_TOKEN_FILE", "bot_token"),
    Variable("TELEGRAM_API_URL", "telegram_api_url"),
    Variable("LOG_LEVEL", "log_level"),
    Variable("LOG_FORMAT", "log_format"),
    Variable("MIGRATION_LOCK_TIMEOUT", "migration_lock_timeout"),
    Variable("DB_WAIT_TIMEOUT", "db_wait_timeout"),
    Variable("BOT_API_WAIT_TIMEOUT", "bot_api_wait_timeout"),
    Variable("BACKUP_DIR", "backup_dir"),
    Variable("BACKUP_KEEP", "backup_keep"),
    Variable("BACKUP_BEFORE_MIGRATE", "backup_before_migrate"),
    Variable("ALLOW_DESTRUCTIVE_MIGRATIONS", "allow_destructive_migrations"),
    Variable("DDL_LOCK_TIMEOUT", "ddl_lock_timeout"),
    Variable("DDL_STATEMENT_TIMEOUT", "ddl_statement_timeout"),
    Variable("DDL_LOCK_RETRIES", "ddl_lock_retries"),
    Variable("ALEMBIC_CONFIG", "alembic_config"),
    Variable("MIGRATE_ON_START", "migrate_on_start"),
    Variable("WEBHOOK_URL", "webhook_url"),
    Variable("WEBHOOK_SECRET", "webhook_secret"),
    Variable("WEBHOOK_HOST", "webhook_listen"),
    Variable("WEBHOOK_PORT", "webhook_listen"),
    Variable("PORT", "webhook_listen"),
    Variable("HEALTH_PORT", "health_listen"),
    Variable("HEALTH_HOST", "health_listen"),
    Variable("ADMIN_IDS", "admin_ids"),
    Variable("SHUTDOWN_TIMEOUT", "shutdown_timeout"),
    Variable("TELEGRAM_PROXY", "telegram_proxy"),
    Variable("TELEGRAM_PACING", "telegram_pacing"),
    Variable("TELEGRAM_RETRY_MAX_WAIT", "telegram_retry_max_wait"),
)


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
    bot_api_wait_timeout: float = 60.0
    migrate_on_start: bool | None = None  # None: follow ENV (production migrates on start)
    webhook_url: str | None = None
    webhook_secret: Secret | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 8080
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    admin_ids: tuple[int, ...] = ()
    shutdown_timeout: float = 8.0
    telegram_proxy: Secret | None = None
    telegram_pacing: bool = True  # pace outbound messages under Telegram's limits (bot/telegram/pacing.py)
    telegram_retry_max_wait: float = 30.0  # seconds a message may spend waiting out 429s before it is dropped
    backup_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "backups")
    backup_keep: int = 10
    backup_before_migrate: bool = False
    allow_destructive_migrations: bool = False
    ddl_lock_timeout: float = 10.0
    ddl_statement_timeout: float = 3600.0
    ddl_lock_retries: int = 3
    alembic_ini: Path = ALEMBIC_INI
    x_arguments: tuple[str, ...] = ()  # `-x key=value` from the command line, for revisions (as `alembic -x`)

    def __post_init__(self) -> None:
        if self.migrate_on_start is None:
            object.__setattr__(self, "migrate_on_start", self.env == "production")

    @property
    def is_production(self) -> bool:
        """Production migrates on start; development refuses a stale schema instead."""
        return self.env == "production"

    @property
    def mode(self) -> str:
        """webhook when WEBHOOK_URL is set (every replica serves), else polling (one leader polls)."""
        return "webhook" if self.webhook_url else "polling"

    @property
    def webhook_path(self) -> str:
        """The path the webhook listener serves: the one in WEBHOOK_URL, or /webhook."""
        path = urlsplit(self.webhook_url or "").path
        return path if path not in ("", "/") else "/webhook"

    @property
    def health_listen(self) -> str | None:
        """Where /healthz is served: its own listener, or the webhook's when HEALTH_PORT equals its port."""
        if self.health_port is None:
            return None
        if self.mode == "webhook" and self.health_port == self.webhook_port:
            return f"{self.webhook_host}:{self.webhook_port}"
        return f"{self.health_host}:{self.health_port}"

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
        values = [self.bot_token.reveal() if self.bot_token else "", self.database_url.password or "",
                  self.webhook_secret.reveal() if self.webhook_secret else "",
                  urlsplit(self.telegram_proxy.reveal()).password or "" if self.telegram_proxy else ""]
        return tuple(str(value) for value in values if len(str(value)) >= 4)

    def summary(self) -> dict[str, object]:
        """Every setting that changes what migrate or start will do, with secrets masked or shown as set/unset."""
        return {
            "environment": self.env,
            "database": describe_url(self.database_url),
            "database_name": database_label(self.database_url),
            "bot_token": mask_token(self.bot_token),
            "telegram_api_url": self.telegram_api_url or TELEGRAM_API_DEFAULT,
            "log_level": self.log_level,
            "log_format": self.log_format,
            "migrate_on_start": self.migrate_on_start,
            "migration_lock_timeout": self.migration_lock_timeout,
            "db_wait_timeout": self.db_wait_timeout,
            "bot_api_wait_timeout": self.bot_api_wait_timeout,
            "backup_dir": str(self.backup_dir),
            "backup_keep": self.backup_keep,
            "backup_before_migrate": self.backup_before_migrate,
            "allow_destructive_migrations": self.allow_destructive_migrations,
            "ddl_lock_timeout": self.ddl_lock_timeout,
            "ddl_statement_timeout": self.ddl_statement_timeout,
            "ddl_lock_retries": self.ddl_lock_retries,
            "alembic_config": str(self.alembic_ini),
            "mode": self.mode,
            "webhook_url": self.webhook_url,
            "webhook_secret": "set" if self.webhook_secret else "unset",
            "webhook_listen": f"{self.webhook_host}:{self.webhook_port}" if self.webhook_url else None,
            "health_listen": self.health_listen,
            "admin_ids": len(self.admin_ids),
            "shutdown_timeout": self.shutdown_timeout,
            "telegram_proxy": mask_proxy(self.telegram_proxy),
            "telegram_pacing": self.telegram_pacing,
            "telegram_retry_max_wait": self.telegram_retry_max_wait,
        }


def mask_proxy(proxy: Secret | None) -> str | None:
    """scheme://host:port of a proxy, without its credentials."""
    if proxy is None:
        return None
    parts = urlsplit(proxy.reveal())
    port = f":{parts.port}" if parts.port else ""
    user = "***@" if parts.username or parts.password else ""
    return f"{parts.scheme}://{user}{parts.hostname}{port}"


def mask_token(token: Secret | None) -> str | None:
    """Keep the bot id (public) and hide the secret half of a token."""
    if token is None:
        return None
    bot_id, _, _ = token.reveal().partition(":")
    return f"{bot_id}:***"


def load_env_file(path: Path | None = None, environ: MutableMapping[str, str] | None = None) -> bool:
    """Fill missing variables from the project's .env; real environment variables win.

    A line python-dotenv cannot parse is a ConfigError naming its number (never its value, which may be a
    secret), raised after every line it could parse was applied, so LOG_FORMAT and ENV still shape the report.
    """
    target = os.environ if environ is None else environ
    path = paths.ENV_FILE if path is None else path
    if not path.is_file():
        return False
    text = _env_file_text(path)
    # python-dotenv's own parser: the same statements dotenv_values reads, with the line each one starts on.
    from dotenv.parser import parse_stream  # only when there is a file: a start without .env skips the import

    broken = [binding.original for binding in parse_stream(io.StringIO(text)) if binding.error]
    if broken:
        for key, value in _parsed_values(text).items():
            target.setdefault(key, value)
        first = broken[0]
        name = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=", first.string)
        raise ConfigError(f"{path.name} line {first.line} cannot be parsed"
                          + (f" (the statement that sets {name.group(1)})" if name else ""),
                          "it is not NAME=value, or a quote in it is never closed",
                          "quote values holding spaces or '#', and close every quote", line=first.line,
                          unparsed_lines=[item.line for item in broken])
    from dotenv import dotenv_values

    for key, loaded in dotenv_values(stream=io.StringIO(text)).items():
        if loaded is not None and key not in target:
            target[key] = loaded
    return True


def _env_file_text(path: Path) -> str:
    """The .env file as text, or a ConfigError saying why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path.name} cannot be read", error.strerror or type(error).__name__,
                          f"fix the permissions of {path} for the bot's user, or remove it") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path.name} line {line} is not UTF-8 text", "python-dotenv reads UTF-8 only",
                          f"save {path.name} as UTF-8", line=line) from None


def _parsed_values(text: str) -> dict[str, str]:
    """The NAME=value statements python-dotenv could parse, as they are (no ${VAR} expansion)."""
    from dotenv.parser import parse_stream

    return {binding.key: binding.value for binding in parse_stream(io.StringIO(text))
            if not binding.error and binding.key and binding.value is not None}


def load_config(environ: Mapping[str, str] | None = None, *, stderr_is_terminal: bool | None = None) -> Config:
    """Validate the environment into a Config, or raise ConfigError naming the variable."""
    environ = _read_secret_files(os.environ if environ is None else environ)
    if stderr_is_terminal is None:
        stderr_is_terminal = sys.stderr.isatty()
    env = _choice(environ, "ENV", ENVIRONMENTS, "development", lower=True)
    api_url = _api_url(environ)
    webhook_url = _webhook_url(environ, self_hosted=api_url is not None)
    default_format = "console" if env == "development" and stderr_is_terminal else "json"
    raw_url = _optional(environ, "DATABASE_URL")
    return Config(
        env=env,
        database_url=normalize_database_url(raw_url) if raw_url is not None else default_database_url(),
        bot_token=_token(environ),
        telegram_api_url=api_url,
        log_level=_choice(environ, "LOG_LEVEL", LOG_LEVELS, "INFO", lower=False),
        log_format=_choice(environ, "LOG_FORMAT", LOG_FORMATS, default_format, lower=True),
        migration_lock_timeout=_seconds(environ, "MIGRATION_LOCK_TIMEOUT", 300.0),
        db_wait_timeout=_seconds(environ, "DB_WAIT_TIMEOUT", 60.0),
        bot_api_wait_timeout=_seconds(environ, "BOT_API_WAIT_TIMEOUT", 60.0),
        migrate_on_start=_flag(environ, "MIGRATE_ON_START", env == "production"),
        webhook_url=webhook_url,
        webhook_secret=_webhook_secret(environ, required=webhook_url is not None),
        webhook_host=_host(environ, "WEBHOOK_HOST", "0.0.0.0"),
        webhook_port=_port(environ, "WEBHOOK_PORT", _port(environ, "PORT", 8080)),
        health_host=_host(environ, "HEALTH_HOST", "127.0.0.1"),
        health_port=_port(environ, "HEALTH_PORT", None),
        admin_ids=_admin_ids(environ),
        shutdown_timeout=_seconds(environ, "SHUTDOWN_TIMEOUT", 8.0),
        telegram_proxy=_proxy(environ),
        telegram_pacing=_flag(environ, "TELEGRAM_PACING", True),
        telegram_retry_max_wait=_seconds(environ, "TELEGRAM_RETRY_MAX_WAIT", 30.0),
        backup_dir=_directory(environ, "BACKUP_DIR", PROJECT_ROOT / "backups"),
        backup_keep=_count(environ, "BACKUP_KEEP", 10),
        backup_before_migrate=_flag(environ, "BACKUP_BEFORE_MIGRATE", False),
        allow_destructive_migrations=_flag(environ, "ALLOW_DESTRUCTIVE_MIGRATIONS", False),
        ddl_lock_timeout=_seconds(environ, "DDL_LOCK_TIMEOUT", 10.0),
        ddl_statement_timeout=_seconds(environ, "DDL_STATEMENT_TIMEOUT", 3600.0),
        ddl_lock_retries=_count(environ, "DDL_LOCK_RETRIES", 3),
        alembic_ini=_existing_file(environ, "ALEMBIC_CONFIG", ALEMBIC_INI),
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


def _read_secret_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """Fill BOT_TOKEN / DATABASE_URL from BOT_TOKEN_FILE / DATABASE_URL_FILE (Docker and Kubernetes secrets)."""
    if not any(f"{name}_FILE" in environ for name in SECRET_FILE_VARIABLES):
        return environ
    merged = dict(environ)
    for name in SECRET_FILE_VARIABLES:
        path_text = _optional(environ, f"{name}_FILE")
        if path_text is None:
            continue
        if name in environ:
            raise ConfigError(f"both {name} and {name}_FILE are set", "only one source of the value may be given",
                              f"remove one of {name} and {name}_FILE")
        path = Path(path_text.strip())
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(f"{name}_FILE points at {path}, which does not exist",
                              "the secret file was not mounted", f"mount the secret or fix {name}_FILE") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{name}_FILE {path} cannot be read", type(error).__name__,
                              "check the file's permissions for the bot's user") from None
        if not value:
            raise ConfigError(f"{name}_FILE {path} is empty", "the secret file holds no value",
                              f"write the value of {name} into it")
        merged[name] = value
    return merged


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no switch."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw.strip()!r} is not a yes/no value", "it must be true or false (or 1/0, yes/no)",
                      f"set {name}=true or {name}=false")


@overload
def _port(environ: Mapping[str, str], name: str, default: int) -> int: ...


@overload
def _port(environ: Mapping[str, str], name: str, default: None) -> int | None: ...


def _port(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A TCP port number."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{name}={text!r} is not a port", "it must be a whole number from 1 to 65535",
                          f"set {name} to e.g. 8080")
    return int(text)


def _host(environ: Mapping[str, str], name: str, default: str) -> str:
    """A listen address: an IP address or a host name, without a scheme or port."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9.:_-]+", value) or "://" in value:
        raise ConfigError(f"{name}={value!r} is not a listen address", "it must be an IP address or a host name",
                          f"set {name} to e.g. 0.0.0.0 (all interfaces) or 127.0.0.1 (this machine only)")
    return value


def _webhook_url(environ: Mapping[str, str], *, self_hosted: bool) -> str | None:
    """The public address Telegram posts updates to; https, except for a self-hosted Bot API server."""
    raw = _optional(environ, "WEBHOOK_URL")
    if raw is None:
        return None
    value = raw.strip()
    parts = urlsplit(value)
    allowed = ("https", "http") if self_hosted else ("https",)
    if parts.scheme not in allowed or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("WEBHOOK_URL is malformed",
                          "Telegram posts only to an https:// address with a host (http:// only via a self-hosted "
                          "Bot API server), without ?query or #fragment",
                          "set it to e.g. https://bot.example.com/webhook")
    return value


def _webhook_secret(environ: Mapping[str, str], *, required: bool) -> Secret | None:
    """The secret Telegram echoes in X-Telegram-Bot-Api-Secret-Token, so forged updates get 401."""
    raw = _optional(environ, "WEBHOOK_SECRET")
    if raw is None:
        if required:
            raise ConfigError("WEBHOOK_URL is set but WEBHOOK_SECRET is not",
                              "without it anyone who finds the address can post fake updates",
                              "set WEBHOOK_SECRET to a random string, e.g. `openssl rand -hex 32`")
        return None
    value = raw.strip()
    if not WEBHOOK_SECRET_PATTERN.match(value):
        raise ConfigError("WEBHOOK_SECRET is malformed", "Telegram allows 1-256 letters, digits, '_' and '-'",
                          "set it to e.g. the output of `openssl rand -hex 32`")
    return Secret(value)


def _admin_ids(environ: Mapping[str, str]) -> tuple[int, ...]:
    """Telegram chat ids that receive start, failure and shutdown notices."""
    raw = _optional(environ, "ADMIN_IDS")
    if raw is None:
        return ()
    ids: list[int] = []
    for item in raw.split(","):
        word = item.strip()
        if not re.fullmatch(r"-?\d{1,20}", word) or int(word) == 0:
            raise ConfigError(f"ADMIN_IDS has {word!r}, which is not a Telegram user id",
                              "it must be comma-separated numeric ids",
                              "set ADMIN_IDS to e.g. 12345678,87654321 (ask @userinfobot for yours)")
        if int(word) not in ids:
            ids.append(int(word))
    return tuple(ids)


def _proxy(environ: Mapping[str, str]) -> Secret | None:
    """A proxy for every Bot API call (it may carry credentials, so it is kept secret)."""
    raw = _optional(environ, "TELEGRAM_PROXY")
    if raw is None:
        return None
    value = raw.strip()
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname or port == -1:
        raise ConfigError("TELEGRAM_PROXY is malformed",
                          f"it must be {'://, '.join(PROXY_SCHEMES)}:// with a host (and optional user:password@)",
                          "set it to e.g. socks5://127.0.0.1:1080")
    return Secret(value)


def _directory(environ: Mapping[str, str], name: str, default: Path) -> Path:
    """A folder path; a relative one is anchored at the project root, like the SQLite default."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    path = Path(raw.strip()).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _existing_file(environ: Mapping[str, str], name: str, default: Path) -> Path:
    """A file that must exist; a relative path is anchored at the project root."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    path = Path(raw.strip()).expanduser()
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(f"{name} points at {path}, which is not a file", "Alembic's ini file must be there",
                          f"fix {name}, or unset it to use {default}")
    return path


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    """A whole number ≥ 0."""
    raw = _optional(environ, name)
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit():
        raise ConfigError(f"{name}={text!r} is not a count", "it must be a whole number ≥ 0",
                          f"set {name} to e.g. {default}")
    return int(text)
