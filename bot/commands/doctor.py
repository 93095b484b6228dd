"""`invoke doctor`: what this deployment would run with, and whether its database and Bot API answer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot.data.presence import require_existing_database
from bot.errors import CheckFailed, ToolkitError
from bot.settings.config import Config
from bot.telegram.outbound.botapi import BotApiError, call

# Doctor answers quickly: it never waits the full DB_WAIT_TIMEOUT for a database that is down.
DATABASE_TIMEOUT = 5.0
BOT_API_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    """One thing checked, its verdict (ok, warn, fail) and why."""

    name: str
    verdict: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def diagnose(config: Config) -> list[Finding]:
    """Check the configuration, the database and the Bot API; never raises for what it finds."""
    return [_configuration(config), _database(config), *_bot_api(config)]


def raise_on_failure(findings: list[Finding]) -> None:
    """Exit 7 when any check failed (anything that would make `invoke start` refuse), so doctor can gate a deploy."""
    failed = [finding.name for finding in findings if finding.verdict == "fail"]
    if failed:
        raise CheckFailed(f"doctor found problems: {', '.join(failed)}", "see the verdicts above",
                          "fix them and run `invoke doctor` again")


def render_json(config: Config, findings: list[Finding]) -> str:
    """One JSON document: the masked configuration and every finding."""
    return json.dumps({"configuration": config.summary(), "checks": [asdict(finding) for finding in findings],
                       "ok": all(finding.verdict != "fail" for finding in findings)}, indent=2, default=str)


def render_table(config: Config, findings: list[Finding]) -> str:
    """The configuration as aligned rows, then one verdict line per check."""
    rows = _flatten(config.summary())
    width = max(len(name) for name, _ in rows)
    lines = ["configuration (secrets masked)"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    lines.append("checks")
    label = max(len(finding.name) for finding in findings)
    lines += [f"  {finding.name:<{label}}  {finding.verdict.upper():<4}  {finding.detail}" for finding in findings]
    return "\n".join(lines)


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested summary values as dotted names."""
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", "-" if value is None else str(value)))
    return rows


def _configuration(config: Config) -> Finding:
    """Loading the configuration already validated every variable; say what it amounts to."""
    notes = []
    if config.mode == "polling" and config.health_port is None and config.is_production:
        notes.append("no HEALTH_PORT: platforms cannot probe this replica")
    if not config.migrate_on_start and config.is_production:
        notes.append("MIGRATE_ON_START=false: run `invoke migrate` as the release step")
    detail = f"{config.env}, {config.mode} mode" + (f"; {'; '.join(notes)}" if notes else "")
    return Finding("configuration", "ok", detail)


def _database(config: Config) -> Finding:
    """Reachable, and where its revision stands; fail for whatever would make `invoke start` refuse here."""
    from bot.migrate.read import overview  # loads Alembic: only when the doctor reads the database

    quick = replace(config, db_wait_timeout=min(config.db_wait_timeout, DATABASE_TIMEOUT))
    try:
        require_existing_database(config.database_url)
    except ToolkitError as error:
        if config.migrate_on_start:
            return Finding("database", "warn", f"{error.what}: `invoke start` creates it and applies every revision")
        return Finding("database", "fail", error.line())
    try:
        found = overview.read_overview(quick)
    except ToolkitError as error:
        return Finding("database", "fail", error.line())
    state = found.state
    data = {"current": list(state.current), "heads": list(state.heads),
            "pending": [info.revision for info in state.pending], "unknown": list(state.unknown),
            "half_applied": [entry.revision for entry in found.half_applied]}
    if state.unknown:
        return Finding("database", "fail", f"at {', '.join(state.unknown)}, which the revision scripts do not know",
                       data)
    if len(state.heads) > 1:
        return Finding("database", "fail", f"the scripts have several heads: {', '.join(state.heads)}; "
                       "`invoke start` refuses until they are merged", data)
    if found.half_applied:
        return Finding("database", "fail", "a revision is half-applied: "
                       f"{', '.join(str(entry.revision) for entry in found.half_applied)}; `invoke start` refuses "
                       "until it is repaired (docs/JOURNAL.md)", data)
    if state.pending and config.migrate_on_start:
        return Finding("database", "warn", f"reachable; {len(state.pending)} revision(s) pending, "
                       "which `invoke start` applies (MIGRATE_ON_START)", data)
    if state.pending:
        why = "development never migrates on start" if not config.is_production else "MIGRATE_ON_START=false"
        return Finding("database", "fail", f"reachable; {len(state.pending)} revision(s) pending and {why}, so "
                       "`invoke start` refuses: run `invoke migrate`", data)
    return Finding("database", "ok", f"reachable, at head {', '.join(state.current) or '(no revisions)'}", data)


def _bot_api(config: Config) -> list[Finding]:
    """getMe with the token (through TELEGRAM_PROXY), then whether the webhook matches the mode."""
    if config.bot_token is None:
        return [Finding("bot api", "fail", "BOT_TOKEN is not set, so `invoke start` refuses (exit 2): set it to the "
                                           "token from @BotFather")]
    try:
        me = call(config, "getMe", timeout=BOT_API_TIMEOUT)
    except BotApiError as error:
        if error.status == 401:
            return [Finding("bot api", "fail", "Telegram rejected BOT_TOKEN (401): copy it again from @BotFather")]
        return [Finding("bot api", "fail", f"unreachable: {error.reason}; check the network, TELEGRAM_API_URL "
                                           "or TELEGRAM_PROXY")]
    found = [Finding("bot api", "ok", f"getMe ok: @{me.get('username')} (id {me.get('id')})",
                     {"username": me.get("username"), "id": me.get("id")})]
    try:
        webhook = call(config, "getWebhookInfo", timeout=BOT_API_TIMEOUT)
    except BotApiError as error:
        return [*found, Finding("webhook", "warn", f"getWebhookInfo failed: {error.reason}")]
    url = webhook.get("url") or ""
    if config.mode == "polling":
        verdict, detail = ("ok", "none set (polling)") if not url else (
            "warn", f"{url} is set; the polling leader will delete it on start")
    elif url == config.webhook_url:
        verdict, detail = "ok", f"registered at {url}"
    else:
        verdict, detail = "warn", f"Telegram has {url or 'none'}; start registers {config.webhook_url}"
    return [*found, Finding("webhook", verdict, detail, {"url": url,
                                                          "pending": webhook.get("pending_update_count")})]
