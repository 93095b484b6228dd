"""Reading the environment (and .env) into a Config, setting by setting as the table declares them."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot import paths
from bot.errors import ConfigError
from bot.settings.config import Config
from bot.settings.table import LOG_FORMATS, LOG_LEVELS, SETTINGS
from bot.settings.values import webhook_url_error

SECRET_FILES = {setting.name: setting.file_of for setting in SETTINGS if setting.file_of}


def load_config(environ: Mapping[str, str] | None = None, *, stderr_is_terminal: bool | None = None) -> Config:
    """Validate the environment into a Config, or raise ConfigError naming the variable."""
    environ = read_secret_files(os.environ if environ is None else environ)
    terminal = sys.stderr.isatty() if stderr_is_terminal is None else stderr_is_terminal
    found: dict[str, Any] = {}
    unset = []
    for setting in SETTINGS:
        text = _optional(environ, setting.name)
        if text is None:
            unset.append(setting)
        found[setting.name] = setting.default if text is None else setting.read(setting.name, text, setting.example)
    for setting in unset:
        if setting.derive is not None:
            found[setting.name] = setting.derive(found, terminal)
    _check_webhook(found)
    return Config(**{setting.field: found[setting.name] for setting in SETTINGS
                     if setting.field and setting.file_of is None})


def _check_webhook(found: Mapping[str, Any]) -> None:
    """What one webhook setting demands of another: http only via a self-hosted Bot API, and a secret."""
    url = found["WEBHOOK_URL"]
    if url is None:
        return
    if urlsplit(url).scheme == "http" and found["TELEGRAM_API_URL"] is None:
        raise webhook_url_error()
    if found["WEBHOOK_SECRET"] is None:
        raise ConfigError("WEBHOOK_URL is set but WEBHOOK_SECRET is not",
                          "without it anyone who finds the address can post fake updates",
                          "set WEBHOOK_SECRET to a random string, e.g. `openssl rand -hex 32`")


def secret_texts(environ: Mapping[str, str]) -> list[str]:
    """The secrets in the raw variables (and secret files), before validation, so no error can quote one."""
    try:
        merged = read_secret_files(environ)
    except ConfigError:
        merged = environ
    found: list[str] = []
    for setting in SETTINGS:
        text = merged.get(setting.name)
        if setting.secret is not None and text and text.strip():
            found += setting.secret(text)
    return found


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


def read_secret_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """Fill BOT_TOKEN / DATABASE_URL from BOT_TOKEN_FILE / DATABASE_URL_FILE (Docker and Kubernetes secrets)."""
    if not any(name in environ for name in SECRET_FILES):
        return environ
    merged = dict(environ)
    for file_variable, name in SECRET_FILES.items():
        path_text = _optional(environ, file_variable)
        if path_text is None:
            continue
        if name in environ:
            raise ConfigError(f"both {name} and {file_variable} are set", "only one source of the value may be given",
                              f"remove one of {name} and {file_variable}")
        path = Path(path_text.strip())
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(f"{file_variable} points at {path}, which does not exist",
                              "the secret file was not mounted", f"mount the secret or fix {file_variable}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{file_variable} {path} cannot be read", type(error).__name__,
                              "check the file's permissions for the bot's user") from None
        if not value:
            raise ConfigError(f"{file_variable} {path} is empty", "the secret file holds no value",
                              f"write the value of {name} into it")
        merged[name] = value
    return merged


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
