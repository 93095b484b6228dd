"""Every variable the configuration reads is documented in the README's table and in .env.example."""

from __future__ import annotations

import re

from tests.support.environment import ROOT, variables_the_code_reads


def test_every_variable_the_code_reads_has_a_readme_row_and_an_env_example_line() -> None:
    """A variable added to load_config without its README row or .env.example line fails here, by name."""
    names = variables_the_code_reads()
    assert {"DATABASE_URL", "TELEGRAM_PACING", "BOT_TOKEN_FILE"} <= names, "the walker over bot/settings.py is broken"
    readme = (ROOT / "README.md").read_text()
    table = readme.partition("\n## Configuration")[2].partition("\n## ")[0]
    example = (ROOT / ".env.example").read_text()
    missing_rows = sorted(name for name in names if not re.search(rf"`\$?{name}`", table))
    missing_lines = sorted(name for name in names if not re.search(rf"^#?\s*{name}=", example, flags=re.MULTILINE))
    assert not missing_rows, f"add to the README's variable table: {missing_rows}"
    assert not missing_lines, f"add to .env.example (commented out, with what it does): {missing_lines}"
    documented = set(re.findall(r"^\|\s*`([A-Z_]+)`", table, flags=re.MULTILINE))
    assert documented <= names, f"the README documents variables nothing reads: {sorted(documented - names)}"
