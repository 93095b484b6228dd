"""The settings table is the one source: the parser, Config, the summary, .env.example and the README follow it."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bot.commands.doctor import Finding, render_json, render_table
from bot.settings import documents
from bot.settings.config import Config
from bot.settings.loading import load_config
from bot.settings.table import BY_NAME, SETTINGS, TELEGRAM_API_DEFAULT
from tests.support.environment import ROOT


class RecordingEnvironment(Mapping[str, str]):
    """An environment that remembers every name the configuration looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_env_example_and_the_readme_table_are_rendered_from_the_table() -> None:
    """Both files are exactly what bot.settings.documents renders; `python -m bot.settings.documents` rewrites them."""
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == documents.env_example(), (
        ".env.example is out of date: run `python -m bot.settings.documents`")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert documents.readme_with_table(readme) == readme, (
        "README's variable table is out of date: run `python -m bot.settings.documents`")


def test_a_setting_edited_in_the_table_alone_shows_up_as_stale_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing one row's help or default text changes what is rendered, so the check above fails until rerun."""
    edited = dataclasses.replace(BY_NAME["SHUTDOWN_TIMEOUT"], help="Seconds to drain.", documented_default="`9`")
    monkeypatch.setattr(documents, "SETTINGS", tuple(edited if s.name == edited.name else s for s in SETTINGS))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "# Seconds to drain.\n# SHUTDOWN_TIMEOUT=8\n" in documents.env_example()
    assert documents.readme_with_table(readme) != readme
    assert "| `SHUTDOWN_TIMEOUT` | `9` |" in documents.variable_table()


def test_load_config_reads_exactly_the_table() -> None:
    """The configuration looks up every variable of the table and no other."""
    environment = RecordingEnvironment({})
    load_config(environment, stderr_is_terminal=False)
    assert environment.asked == set(BY_NAME)


def test_config_has_one_typed_field_per_setting_defaulting_to_the_table() -> None:
    """Each field a setting sets is a Config attribute whose default is the setting's; no field lacks a setting."""
    fields = {field.name: field.default for field in dataclasses.fields(Config)}
    set_by_table = {setting.field for setting in SETTINGS if setting.field}
    assert set(fields) - set_by_table == {"x_arguments"}, "a Config field no setting sets (only -x is a flag)"
    for setting in SETTINGS:
        if setting.field:
            assert fields[setting.field] == setting.default, setting.name


def shown(value: object) -> str:
    """A value as the README writes a default: whole numbers without .0, booleans in lower case, paths relative."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path):
        return value.relative_to(ROOT).as_posix()
    return str(value)


def test_each_documented_default_is_what_an_empty_environment_gives() -> None:
    """`X` in the default column is the value load_config gives the field when nothing is set; — and off are None."""
    config = load_config({}, stderr_is_terminal=False)
    checked = 0
    for setting in SETTINGS:
        value = getattr(config, setting.field) if setting.field and not setting.file_of else None
        documented = setting.documented_default
        if re.fullmatch(r"`[^`]+`", documented):
            if setting.name == "DATABASE_URL":
                assert config.database_url.database == str(ROOT / "data" / "bot.db")
            else:
                assert shown(value) == documented.strip("`"), setting.name
            checked += 1
        elif documented in ("—", "off"):
            assert value in (None, ()), setting.name
            checked += 1
    assert checked >= 25, "the default column was not read"
    assert config.telegram_api_url is None and config.summary()["telegram_api_url"] == TELEGRAM_API_DEFAULT
    assert config.log_format == "json" and load_config({}, stderr_is_terminal=True).log_format == "console"
    assert load_config({"ENV": "production"}, stderr_is_terminal=True).log_format == "json"
    assert config.webhook_port == 8080 and load_config({"PORT": "5000"}).webhook_port == 5000
    assert config.migrate_on_start is False and load_config({"ENV": "production"}).migrate_on_start is True


def test_summary_doctor_and_logging_md_show_every_setting() -> None:
    """Each setting's summary key is in the summary, doctor's table and JSON, and LOGGING.md's summary row."""
    config = load_config({}, stderr_is_terminal=False)
    findings = [Finding("database", "ok", "reachable")]
    rows = {line.split()[0] for line in render_table(config, findings).splitlines()[1:] if line.startswith("  ")}
    document = json.loads(render_json(config, findings))["configuration"]
    logging_row = next(line for line in (ROOT / "docs" / "LOGGING.md").read_text(encoding="utf-8").splitlines()
                       if line.startswith("| `configuration loaded` |"))
    fields = set(re.findall(r"\b([a-z_]+)\b", logging_row.split("|")[4]))
    for setting in SETTINGS:
        assert setting.shown_as in config.summary() and setting.shown_as in document, setting.name
        assert any(row == setting.shown_as or row.startswith(setting.shown_as + ".") for row in rows), setting.name
    assert set(config.summary()) <= fields, "docs/LOGGING.md's `configuration loaded` row lists every field"


def test_every_secret_setting_is_registered_and_masked() -> None:
    """A secret setting's value is among Config.secrets() and never in the summary; plain settings are not secret."""
    secret = {"BOT_TOKEN": "123456789:AAH1secrettokenvalue-abcdefghij", "WEBHOOK_SECRET": "w3bh00k-s3cret",
              "TELEGRAM_PROXY": "socks5://user:pr0xy-pass@127.0.0.1:1080",
              "DATABASE_URL": "postgresql://bot:db-pa55word@db:5432/bot"}
    assert {setting.name for setting in SETTINGS if setting.secret} == set(secret)
    config = load_config({**secret, "WEBHOOK_URL": "https://bot.example.com/hook"}, stderr_is_terminal=False)
    registered = config.secrets()
    summary = json.dumps(config.summary(), default=str)
    for needle in ("AAH1secrettokenvalue-abcdefghij", "w3bh00k-s3cret", "pr0xy-pass", "db-pa55word"):
        assert any(needle in value for value in registered), needle
        assert needle not in summary and needle not in repr(config), needle


def test_the_read_by_column_names_real_tasks() -> None:
    """Each setting is read by at least one task, and every name it lists is a task `invoke --list` shows."""
    defined = {name.replace("_", "-") for name in re.findall(r"^def ([a-z_]+)\(c: Context", (ROOT / "tasks.py")
                                                              .read_text(), re.MULTILINE)}
    assert {"migrate", "rollback-base", "accept-edit", "start"} <= defined
    for setting in SETTINGS:
        assert setting.commands and setting.commands <= defined, (setting.name, setting.commands - defined)
