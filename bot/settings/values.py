"""How each kind of setting is read from its text: one function per kind, raising ConfigError naming the variable.

A reader gets the variable's name and its text (never empty: the loader refuses a set-but-empty variable first)
and returns the value the configuration keeps. `example` is what the fix in an error message suggests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import URL

from bot.data.urls import normalize_database_url
from bot.errors import ConfigError
from bot.paths import PROJECT_ROOT
from bot.redact import Secret

Reader = Callable[[str, str, str], Any]  # (name, text, example) -> value

TOKEN_PATTERN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
PROXY_SCHEMES = ("http", "https", "socks4", "socks5")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def choice(allowed: tuple[str, ...], *, lower: bool) -> Reader:
    """One of a fixed set of words, compared without case or surrounding blanks."""
    def read(name: str, text: str, _example: str) -> str:
        value = text.strip().lower() if lower else text.strip().upper()
        if value not in allowed:
            raise ConfigError(f"{name}={text.strip()!r} is not allowed", f"it must be one of {', '.join(allowed)}",
                              f"set {name} to one of those")
        return value

    return read


def seconds(name: str, text: str, example: str) -> float:
    """A non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name}={text.strip()!r} is not a number of seconds", "it must be a number ≥ 0",
                          f"set {name} to e.g. {example}")
    return value


def count(name: str, text: str, example: str) -> int:
    """A whole number ≥ 0."""
    value = text.strip()
    if not value.isdigit():
        raise ConfigError(f"{name}={value!r} is not a count", "it must be a whole number ≥ 0",
                          f"set {name} to e.g. {example}")
    return int(value)


def flag(name: str, text: str, _example: str) -> bool:
    """A yes/no switch."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={text.strip()!r} is not a yes/no value", "it must be true or false (or 1/0, yes/no)",
                      f"set {name}=true or {name}=false")


def port(name: str, text: str, _example: str) -> int:
    """A TCP port number."""
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name}={value!r} is not a port", "it must be a whole number from 1 to 65535",
                          f"set {name} to e.g. 8080")
    return int(value)


def host(name: str, text: str, _example: str) -> str:
    """A listen address: an IP address or a host name, without a scheme or port."""
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9.:_-]+", value) or "://" in value:
        raise ConfigError(f"{name}={value!r} is not a listen address", "it must be an IP address or a host name",
                          f"set {name} to e.g. 0.0.0.0 (all interfaces) or 127.0.0.1 (this machine only)")
    return value


def database_url(_name: str, text: str, _example: str) -> URL:
    """DATABASE_URL, with our async driver and an absolute SQLite path (bot.data.urls)."""
    return normalize_database_url(text)


def token(_name: str, text: str, _example: str) -> Secret:
    """The bot token, checked for shape so a typo fails before anything connects."""
    value = text.strip()
    if not TOKEN_PATTERN.match(value):
        raise ConfigError("BOT_TOKEN is malformed",
                          "a token is digits, a colon, then at least 20 letters, digits, '_' or '-'",
                          "copy the token again from @BotFather")
    return Secret(value)


def api_url(_name: str, text: str, _example: str) -> str:
    """Base address of a Bot API server, without a trailing slash."""
    value = text.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("TELEGRAM_API_URL is malformed", "it must be an http:// or https:// address with a host",
                          "set it to e.g. http://127.0.0.1:8081")
    return value


def webhook_url(_name: str, text: str, _example: str) -> str:
    """The public address Telegram posts updates to (https; http only via a self-hosted Bot API: loading checks)."""
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise webhook_url_error()
    return value


def webhook_url_error() -> ConfigError:
    """WEBHOOK_URL is not an address Telegram posts to."""
    return ConfigError("WEBHOOK_URL is malformed",
                       "Telegram posts only to an https:// address with a host (http:// only via a self-hosted "
                       "Bot API server), without ?query or #fragment",
                       "set it to e.g. https://bot.example.com/webhook")


def webhook_secret(_name: str, text: str, _example: str) -> Secret:
    """The secret Telegram echoes in X-Telegram-Bot-Api-Secret-Token, so forged updates get 401."""
    value = text.strip()
    if not WEBHOOK_SECRET_PATTERN.match(value):
        raise ConfigError("WEBHOOK_SECRET is malformed", "Telegram allows 1-256 letters, digits, '_' and '-'",
                          "set it to e.g. the output of `openssl rand -hex 32`")
    return Secret(value)


def admin_ids(_name: str, text: str, _example: str) -> tuple[int, ...]:
    """Telegram chat ids that receive start, failure and shutdown notices."""
    ids: list[int] = []
    for item in text.split(","):
        word = item.strip()
        if not re.fullmatch(r"-?\d{1,20}", word) or int(word) == 0:
            raise ConfigError(f"ADMIN_IDS has {word!r}, which is not a Telegram user id",
                              "it must be comma-separated numeric ids",
                              "set ADMIN_IDS to e.g. 12345678,87654321 (ask @userinfobot for yours)")
        if int(word) not in ids:
            ids.append(int(word))
    return tuple(ids)


def proxy(_name: str, text: str, _example: str) -> Secret:
    """A proxy for every Bot API call (it may carry credentials, so it is kept secret)."""
    value = text.strip()
    parts = urlsplit(value)
    try:
        proxy_port = parts.port
    except ValueError:
        proxy_port = -1
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname or proxy_port == -1:
        raise ConfigError("TELEGRAM_PROXY is malformed",
                          f"it must be {'://, '.join(PROXY_SCHEMES)}:// with a host (and optional user:password@)",
                          "set it to e.g. socks5://127.0.0.1:1080")
    return Secret(value)


def directory(_name: str, text: str, _example: str) -> Path:
    """A folder path; a relative one is anchored at the project root, like the SQLite default."""
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def existing_file(name: str, text: str, example: str) -> Path:
    """A file that must exist; a relative path is anchored at the project root."""
    path = directory(name, text, example)
    if not path.is_file():
        raise ConfigError(f"{name} points at {path}, which is not a file", "Alembic's ini file must be there",
                          f"fix {name}, or unset it to use {PROJECT_ROOT / example}")
    return path


def secret_file_path(_name: str, text: str, _example: str) -> Path:
    """The path in NAME_FILE (Docker and Kubernetes secrets); the loader reads the value from it."""
    return Path(text.strip())
