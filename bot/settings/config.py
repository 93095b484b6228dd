"""The validated configuration as frozen data; its defaults, secrets and summary all come from the settings table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL

from bot.errors import ConfigError
from bot.redact import Secret
from bot.settings.table import DEFAULTS, SETTINGS


@dataclass(frozen=True)
class Config:
    """Everything the toolkit reads from the environment, already validated."""

    env: str = DEFAULTS["env"]
    database_url: URL = DEFAULTS["database_url"]
    bot_token: Secret | None = DEFAULTS["bot_token"]
    telegram_api_url: str | None = DEFAULTS["telegram_api_url"]
    log_level: str = DEFAULTS["log_level"]
    log_format: str = DEFAULTS["log_format"]
    migration_lock_timeout: float = DEFAULTS["migration_lock_timeout"]
    db_wait_timeout: float = DEFAULTS["db_wait_timeout"]
    bot_api_wait_timeout: float = DEFAULTS["bot_api_wait_timeout"]
    migrate_on_start: bool | None = DEFAULTS["migrate_on_start"]  # None: follow ENV (production migrates on start)
    webhook_url: str | None = DEFAULTS["webhook_url"]
    webhook_secret: Secret | None = DEFAULTS["webhook_secret"]
    webhook_host: str = DEFAULTS["webhook_host"]
    webhook_port: int = DEFAULTS["webhook_port"]
    health_host: str = DEFAULTS["health_host"]
    health_port: int | None = DEFAULTS["health_port"]
    admin_ids: tuple[int, ...] = DEFAULTS["admin_ids"]
    shutdown_timeout: float = DEFAULTS["shutdown_timeout"]
    telegram_proxy: Secret | None = DEFAULTS["telegram_proxy"]
    telegram_pacing: bool = DEFAULTS["telegram_pacing"]
    telegram_retry_max_wait: float = DEFAULTS["telegram_retry_max_wait"]
    backup_dir: Path = DEFAULTS["backup_dir"]
    backup_keep: int = DEFAULTS["backup_keep"]
    backup_before_migrate: bool = DEFAULTS["backup_before_migrate"]
    allow_destructive_migrations: bool = DEFAULTS["allow_destructive_migrations"]
    ddl_lock_timeout: float = DEFAULTS["ddl_lock_timeout"]
    ddl_statement_timeout: float = DEFAULTS["ddl_statement_timeout"]
    ddl_lock_retries: int = DEFAULTS["ddl_lock_retries"]
    alembic_ini: Path = DEFAULTS["alembic_ini"]
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
        """The secret texts in the validated values (each secret setting's own rule), for the redactor."""
        found: list[str] = []
        for setting in SETTINGS:
            if setting.secret is None or setting.field is None:
                continue
            value = getattr(self, setting.field)
            if isinstance(value, Secret):
                found += setting.secret(value.reveal())
            elif isinstance(value, URL) and value.password:
                found.append(str(value.password))
        return tuple(text for text in found if text)

    def summary(self) -> dict[str, object]:
        """Every setting's effect on migrate and start, in the table's order, secrets masked or shown as set/unset."""
        shown: dict[str, object] = {}
        for setting in SETTINGS:
            if setting.show is not None:
                for key, value in setting.show(self).items():
                    shown.setdefault(key, value)
        return shown
