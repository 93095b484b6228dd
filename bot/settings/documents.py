"""`.env.example` and the README's variable table, rendered from the settings table.

`python -m bot.settings.documents` rewrites both from bot.settings.table; tests/unit/test_settings_table.py fails
while either file differs from what this renders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bot.paths import PROJECT_ROOT
from bot.settings.table import COMMANDS, EVERY, SETTINGS

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
README = PROJECT_ROOT / "README.md"
TABLE_START = "<!-- variables: generated from bot/settings/table.py by `python -m bot.settings.documents` -->"
TABLE_END = "<!-- end of variables -->"


def env_example() -> str:
    """.env.example: each setting's one-line help, then the setting itself, commented out unless it is set."""
    lines = ["# Copy to .env and edit. Real environment variables always win over this file.", ""]
    for setting in SETTINGS:
        lines.append(f"# {setting.help}")
        lines.append(f"{'' if setting.set_in_example else '# '}{setting.name}={setting.example}")
    return "\n".join(lines) + "\n"


def readers(commands: frozenset[str]) -> str:
    """The `read by` cell: every command, or the ones named, in `invoke --list` order."""
    if commands == EVERY:
        return "every command"
    return ", ".join(f"`{name}`" for name in COMMANDS if name in commands)


def variable_table() -> str:
    """The README's variable table, between its markers."""
    rows = [TABLE_START, "| variable | default | read by | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{setting.name}` | {setting.documented_default} | {readers(setting.commands)} | {setting.doc} |"
             for setting in SETTINGS]
    return "\n".join([*rows, TABLE_END])


def readme_with_table(readme: str) -> str:
    """The README with its variable table replaced by the rendered one."""
    before, start, rest = readme.partition(TABLE_START)
    _old, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"README.md has no {TABLE_START!r} … {TABLE_END!r} block")
    return before + variable_table() + after


def main() -> None:
    """Rewrite .env.example and the README's table; with --check, exit 1 instead when either is out of date."""
    stale = []
    for path, text in ((ENV_EXAMPLE, env_example()), (README, readme_with_table(README.read_text(encoding="utf-8")))):
        if Path(path).read_text(encoding="utf-8") != text:
            stale.append(path.name)
            if "--check" not in sys.argv[1:]:
                path.write_text(text, encoding="utf-8")
    if stale and "--check" in sys.argv[1:]:
        raise SystemExit(f"out of date: {', '.join(stale)}; run `python -m bot.settings.documents`")


if __name__ == "__main__":
    main()
