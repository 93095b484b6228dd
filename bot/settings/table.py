"""Every environment variable the toolkit reads, declared once: its reader, default, help, readers and secrecy.

The loader (bot.settings.loading) reads exactly these, in this order; Config's defaults, the startup summary
and `invoke doctor` come from here; `.env.example` and the README's variable table are generated from here
(`python -m bot.settings.documents`), and a test fails while either differs from what this table renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from bot.data.urls import database_label, default_database_url, describe_url, written_passwords
from bot.paths import ALEMBIC_INI, PROJECT_ROOT
from bot.redact import Secret
from bot.settings import values as read
from bot.settings.values import Reader

if TYPE_CHECKING:
    from bot.settings.config import Config

TELEGRAM_API_DEFAULT = "https://api.telegram.org"
ENVIRONMENTS = ("development", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")

# The tasks, as `invoke --list` names them; a setting lists those that read it.
COMMANDS = ("migrate", "review", "rollback", "rollback-base", "restore", "check", "history", "status", "stamp",
            "accept-edit", "revision", "squash", "start", "doctor")
EVERY = frozenset(COMMANDS)
CHANGING = frozenset({"migrate", "rollback", "rollback-base", "restore", "stamp", "accept-edit", "start"})
BACKED_UP = frozenset({"migrate", "rollback", "rollback-base", "restore", "start"})
MIGRATING = frozenset({"migrate", "rollback", "rollback-base", "start"})
TELEGRAM = frozenset({"start", "doctor", "migrate"})  # migrate: the migration-failed notice to ADMIN_IDS
BOT = frozenset({"start", "doctor"})

Shown = Callable[["Config"], Mapping[str, object]]
Derived = Callable[[Mapping[str, Any], bool], Any]  # (the values read so far by name, stderr is a terminal)


@dataclass(frozen=True)
class Setting:
    """One environment variable: how it is read, what it defaults to, who reads it, how it is shown."""

    name: str
    field: str | None  # the Config attribute it sets; None: it only feeds another setting (PORT, NAME_FILE)
    read: Reader
    default: Any  # Config's value when unset
    documented_default: str  # the README's default column (markdown)
    help: str  # one line: .env.example's comment
    doc: str  # the README's meaning column (markdown)
    example: str  # .env.example's value, and the value an error message suggests
    commands: frozenset[str]
    shown_as: str  # the key of the startup summary and `invoke doctor` that shows its effect
    show: Shown | None = None  # the summary entries it supplies; None: shown by another setting's entries
    derive: Derived | None = None  # the value when unset, when it depends on other settings or the terminal
    secret: Callable[[str], Iterable[str]] | None = None  # the secret texts inside a raw value, for the redactor
    file_of: str | None = None  # NAME_FILE: the setting whose value the named file holds
    set_in_example: bool = False  # .env.example sets it (uncommented) rather than showing it commented out


def plain(field: str, key: str | None = None) -> Shown:
    """Show a field as it is (paths as text)."""
    def show(config: Config) -> Mapping[str, object]:
        value = getattr(config, field)
        return {key or field: value if isinstance(value, (str, int, float, bool, type(None))) else str(value)}

    return show


def mask_token(token: Secret | None) -> str | None:
    """Keep the bot id (public) and hide the secret half of a token."""
    return None if token is None else f"{token.reveal().partition(':')[0]}:***"


def mask_proxy(proxy: Secret | None) -> str | None:
    """scheme://host:port of a proxy, without its credentials."""
    if proxy is None:
        return None
    parts = urlsplit(proxy.reveal())
    port = f":{parts.port}" if parts.port else ""
    user = "***@" if parts.username or parts.password else ""
    return f"{parts.scheme}://{user}{parts.hostname}{port}"


def token_secrets(text: str) -> list[str]:
    """A token and its secret half (after the colon), each redacted wherever it appears."""
    token = text.strip()
    return [token, token.partition(":")[2]]


def proxy_secrets(text: str) -> list[str]:
    """A proxy URL's password, as written and percent-decoded."""
    try:
        password = urlsplit(text.strip()).password or ""
    except ValueError:
        return []
    return [password, unquote(password)]


def webhook_listen(config: Config) -> Mapping[str, object]:
    """host:port of the webhook listener, in webhook mode."""
    return {"webhook_listen": f"{config.webhook_host}:{config.webhook_port}" if config.webhook_url else None}


def _setting(name: str, field: str | None, read_with: Reader, default: Any, documented: str, help_text: str,
             doc: str, example: str, commands: Iterable[str], shown_as: str, show: Shown | None = None,
             **more: Any) -> Setting:
    return Setting(name, field, read_with, default, documented, help_text, doc, example, frozenset(commands),
                   shown_as, show, **more)


def _timeout(name: str, field: str, default: float, help_text: str, doc: str, commands: Iterable[str]) -> Setting:
    return _setting(name, field, read.seconds, default, f"`{default:g}`", help_text, doc, f"{default:g}", commands,
                    field, plain(field))


SETTINGS: tuple[Setting, ...] = (
    _setting("ENV", "env", read.choice(ENVIRONMENTS, lower=True), "development", "`development`",
             "development (default: never migrates on start) or production (migrates on start, JSON logs).",
             "`development` or `production` (case-insensitive). Anything else is an error.", "development",
             EVERY, "environment", plain("env", "environment"), set_in_example=True),
    _setting("DATABASE_URL", "database_url", read.database_url, default_database_url(), "`sqlite:///data/bot.db`",
             "Database; default is the SQLite file data/bot.db. Platform forms work: postgres://…, mysql://…, "
             "mariadb://…",
             "`sqlite:///relative.db` (relative to the project root), `sqlite:////abs.db`, `postgres://`, "
             "`postgresql://`, `mysql://`, `mariadb://`, with the query options platforms add (`?sslmode=…`, "
             "`?ssl-mode=…`, `?charset=…`). Percent-encode special characters in the password (`@` as `%40`); a raw "
             "one still works when it is unambiguous: the credentials end at the `@` before the host, and a `%` that "
             "starts no escape is taken as it is. Drivers, options, PgBouncer: [docs/DATABASES.md](docs/DATABASES.md).",
             "postgresql://bot:secret@127.0.0.1:5432/bot", EVERY, "database",
             lambda config: {"database": describe_url(config.database_url),
                             "database_name": database_label(config.database_url)},
             secret=written_passwords),
    _setting("DATABASE_URL_FILE", None, read.secret_file_path, None, "—",
             "Read the database URL from a file instead (Docker and Kubernetes secrets); never set both forms.",
             "Path of a file holding `DATABASE_URL` (Docker/Kubernetes secrets); setting both is an error.",
             "/run/secrets/database_url", EVERY, "database", file_of="DATABASE_URL"),
    _setting("BOT_TOKEN", "bot_token", read.token, None, "—", "Token from @BotFather; needed only by `invoke start`.",
             "Required by `start`; `migrate` uses it only to tell `ADMIN_IDS` a revision failed. Checked for shape "
             "before anything connects.",
             "123456789:replace-with-your-token-from-botfather", TELEGRAM, "bot_token",
             lambda config: {"bot_token": mask_token(config.bot_token)}, secret=token_secrets),
    _setting("BOT_TOKEN_FILE", None, read.secret_file_path, None, "—",
             "Read the token from a file instead (Docker and Kubernetes secrets); never set both forms.",
             "Path of a file holding `BOT_TOKEN` (Docker/Kubernetes secrets); setting both is an error.",
             "/run/secrets/bot_token", TELEGRAM, "bot_token", file_of="BOT_TOKEN"),
    _setting("TELEGRAM_API_URL", "telegram_api_url", read.api_url, None, "Telegram's",
             "Base address of a self-hosted Bot API server (default: Telegram's own).",
             "Base address of a self-hosted Bot API server.", "http://127.0.0.1:8081", TELEGRAM, "telegram_api_url",
             lambda config: {"telegram_api_url": config.telegram_api_url or TELEGRAM_API_DEFAULT}),
    _setting("LOG_LEVEL", "log_level", read.choice(LOG_LEVELS, lower=False), "INFO", "`INFO`",
             "DEBUG, INFO (default), WARNING, ERROR or CRITICAL.", "`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`.",
             "INFO", EVERY, "log_level", plain("log_level")),
    _setting("LOG_FORMAT", "log_format", read.choice(LOG_FORMATS, lower=True), "json", "see meaning",
             "json or console; default json in production, console on a terminal in development.",
             "`json` or `console`; default `json` in production, `console` in development on a terminal, `json` "
             "otherwise.", "console", EVERY, "log_format", plain("log_format"),
             derive=lambda found, terminal: "console" if found["ENV"] == "development" and terminal else "json"),
    _timeout("MIGRATION_LOCK_TIMEOUT", "migration_lock_timeout", 300.0,
             "Seconds to wait for another replica's migration lock before exiting 5 (default 300).",
             "Seconds to wait for another process's migration lock before exiting 5 (several replicas: "
             "[docs/DATABASES.md](docs/DATABASES.md)).", CHANGING),
    _timeout("DB_WAIT_TIMEOUT", "db_wait_timeout", 60.0,
             "Seconds to keep retrying an unreachable database before exiting 3 (default 60).",
             "Seconds to retry an unreachable database (refused, timed out, still starting, a DNS server that did "
             "not answer) before exiting 3; a host name that does not exist, wrong credentials or an unknown database "
             "exit 3 at once.", EVERY),
    _timeout("BOT_API_WAIT_TIMEOUT", "bot_api_wait_timeout", 60.0,
             "Seconds `invoke start` keeps retrying a Bot API that does not answer before exiting 9 (default 60).",
             "Seconds `start` retries a Bot API that does not answer `getMe` (network down, Telegram's 5xx or 429) "
             "before exiting 9; a rejected token (exit 2) or a host name that does not exist (exit 9) end it at once.",
             {"start"}),
    _setting("BACKUP_DIR", "backup_dir", read.directory, PROJECT_ROOT / "backups", "`backups`",
             "Folder for the backups taken before rollback/rollback-base/restore (default backups/); mount a volume "
             "in containers.",
             "Where backups before destructive commands go (relative to the project root). In a container, mount a "
             "volume: the container's own filesystem is lost on redeploy.", "backups", BACKED_UP, "backup_dir",
             plain("backup_dir")),
    _setting("BACKUP_KEEP", "backup_keep", read.count, 10, "`10`",
             "How many backups of each database to keep, oldest removed first (default 10; 0 keeps all).",
             "How many backups of each database to keep (oldest removed first, each with anything SQLite left beside "
             "it); `0` keeps all. Every backup is one file.", "10", BACKED_UP, "backup_keep", plain("backup_keep")),
    _setting("BACKUP_BEFORE_MIGRATE", "backup_before_migrate", read.flag, False, "`false`",
             "true: back up before a production upgrade that has something pending (default false).",
             "`true`: production upgrades (`migrate`, `start`) back up first when something is pending.", "false",
             {"migrate", "start"}, "backup_before_migrate", plain("backup_before_migrate")),
    _setting("ALLOW_DESTRUCTIVE_MIGRATIONS", "allow_destructive_migrations", read.flag, False, "`false`",
             "true: apply revisions whose review findings nobody acknowledged, for this one deploy (default false; "
             "see docs/REVIEW.md).",
             "`true`: apply revisions with unmarked destructive operations, for one deploy (same as "
             "`--allow-destructive`).", "false", MIGRATING, "allow_destructive_migrations",
             plain("allow_destructive_migrations")),
    _timeout("DDL_LOCK_TIMEOUT", "ddl_lock_timeout", 10.0,
             "Seconds a migration step may wait for a table lock before failing with exit 4 (default 10; 0 waits "
             "forever).",
             "Seconds a migration step may wait for a table lock (PostgreSQL `lock_timeout`, MySQL/MariaDB "
             "`lock_wait_timeout`) before failing with exit 4; `0` waits forever.", MIGRATING | {"restore"}),
    _timeout("DDL_STATEMENT_TIMEOUT", "ddl_statement_timeout", 3600.0,
             "Seconds one migration statement may run, PostgreSQL and MariaDB (default 3600; 0 = no limit).",
             "Seconds one migration statement may run (PostgreSQL `statement_timeout`, MariaDB "
             "`max_statement_time`); `0` = no limit.", MIGRATING | {"restore"}),
    _setting("DDL_LOCK_RETRIES", "ddl_lock_retries", read.count, 3, "`3`",
             "How often a step that gave up on a table lock (and left nothing behind) runs again (default 3; 0 "
             "never).",
             "How many times a step that gave up on a table lock (and left nothing behind) runs again, after 1, 2, 4 "
             "… s ([docs/REVIEW.md](docs/REVIEW.md)); `0` never retries.", "3", MIGRATING, "ddl_lock_retries",
             plain("ddl_lock_retries")),
    _setting("ALEMBIC_CONFIG", "alembic_ini", read.existing_file, ALEMBIC_INI, "`alembic.ini`",
             "Alembic's ini file, as `alembic -c` takes it (default: alembic.ini at the project root).",
             "Alembic's ini file, as for `alembic -c` (relative to the project root).", "alembic.ini", EVERY,
             "alembic_config", plain("alembic_ini", "alembic_config")),
    _setting("MIGRATE_ON_START", "migrate_on_start", read.flag, None, "`true` in production, else `false`",
             "Migrate on `invoke start` (default: true in production); false = run `invoke migrate` as a release "
             "step.",
             "`false`: `start` never migrates; it refuses (exit 6) unless the database is at head, so a release step "
             "(`invoke migrate`) does it ([docs/DEPLOYMENT.md](docs/DEPLOYMENT.md)).", "false", BOT,
             "migrate_on_start", plain("migrate_on_start")),
    _setting("WEBHOOK_URL", "webhook_url", read.webhook_url, None, "—",
             "Webhook mode (unset: polling, one elected leader per token): the public https address.",
             "Webhook mode: the public `https://` address Telegram posts to (its path is served; default "
             "`/webhook`). Unset: polling with one elected leader per token.", "https://bot.example.com/webhook", BOT,
             "webhook_url", lambda config: {"mode": config.mode, "webhook_url": config.webhook_url}),
    _setting("WEBHOOK_SECRET", "webhook_secret", read.webhook_secret, None, "—",
             "Required with WEBHOOK_URL: the secret token Telegram sends with each update.",
             "Required with `WEBHOOK_URL`: 1–256 of `A-Z a-z 0-9 _ -`; requests without it get 401.",
             "output-of-openssl-rand-hex-32", BOT, "webhook_secret",
             lambda config: {"webhook_secret": "set" if config.webhook_secret else "unset"},
             secret=lambda text: [text.strip()]),
    _setting("WEBHOOK_HOST", "webhook_host", read.host, "0.0.0.0", "`0.0.0.0`",
             "Where the webhook listener binds (default 0.0.0.0).", "Where the webhook listener binds.", "0.0.0.0",
             BOT, "webhook_listen", webhook_listen),
    _setting("WEBHOOK_PORT", "webhook_port", read.port, 8080, "`$PORT` or `8080`",
             "The webhook listener's port (default: $PORT, else 8080).", "The webhook listener's port.", "8080", BOT,
             "webhook_listen", derive=lambda found, _terminal: 8080 if found["PORT"] is None else found["PORT"]),
    _setting("PORT", None, read.port, None, "—",
             "Platforms such as Heroku and Railway set PORT themselves; WEBHOOK_PORT falls back to it.",
             "Set by platforms (Heroku, Railway, Render): the webhook listener's port when `WEBHOOK_PORT` is not set.",
             "8080", BOT, "webhook_listen"),
    _setting("HEALTH_PORT", "health_port", read.port, None, "off",
             "/livez (alias /healthz), /readyz and /metrics on this port (off when unset).",
             "`/livez` (alias `/healthz`), `/readyz` (JSON) and `/metrics` (Prometheus, "
             "[docs/METRICS.md](docs/METRICS.md)); a `HEALTH_PORT` equal to `WEBHOOK_PORT` (webhook mode) shares the "
             "webhook's listener, on `WEBHOOK_HOST`.", "8081", BOT, "health_listen",
             lambda config: {"health_listen": config.health_listen}),
    _setting("HEALTH_HOST", "health_host", read.host, "127.0.0.1", "`127.0.0.1`",
             "Where /livez, /readyz and /metrics listen; 0.0.0.0 for probes from outside the container.",
             "Where the health listener binds; `0.0.0.0` for probes from outside the container.", "127.0.0.1", BOT,
             "health_listen"),
    _setting("ADMIN_IDS", "admin_ids", read.admin_ids, (), "—",
             "Telegram ids notified on start, migration failure and shutdown, comma-separated.",
             "Comma-separated Telegram ids that get start, migration-failure and shutdown notices.", "12345678",
             TELEGRAM, "admin_ids", lambda config: {"admin_ids": len(config.admin_ids)}),
    _timeout("SHUTDOWN_TIMEOUT", "shutdown_timeout", 8.0,
             "Seconds in-flight handlers get to finish after SIGTERM/SIGINT (default 8).",
             "Seconds after SIGTERM/SIGINT for in-flight handlers to finish before they are cut.", {"start"}),
    _setting("TELEGRAM_PROXY", "telegram_proxy", read.proxy, None, "—",
             "Proxy for every Bot API call: http://, https://, socks4:// or socks5://user:pass@host:port.",
             "`http://`, `https://`, `socks4://` or `socks5://[user:pass@]host:port` for every Bot API call.",
             "socks5://127.0.0.1:1080", TELEGRAM, "telegram_proxy",
             lambda config: {"telegram_proxy": mask_proxy(config.telegram_proxy)}, secret=proxy_secrets),
    _setting("TELEGRAM_PACING", "telegram_pacing", read.flag, True, "`true`",
             "Pace outbound messages under Telegram's limits (30/s overall, ~1/s per chat, 20/min per group); "
             "default true.",
             "Pace outbound messages under Telegram's limits (30/s overall, about 1/s per chat, 20/min per group); "
             "`false` sends at once.", "true", {"start"}, "telegram_pacing", plain("telegram_pacing")),
    _timeout("TELEGRAM_RETRY_MAX_WAIT", "telegram_retry_max_wait", 30.0,
             "Seconds a message may spend waiting out Telegram's 429 retry_after before it is dropped and logged "
             "(default 30).",
             "Seconds an outbound message may spend waiting out Telegram's 429 `retry_after` before it is dropped "
             "(and logged); `0` never waits.", {"start"}),
)

BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}

# Config's value of each field when nothing sets it (load_config may refine it with a setting's `derive`).
DEFAULTS: Mapping[str, Any] = {setting.field: setting.default for setting in SETTINGS if setting.field}
