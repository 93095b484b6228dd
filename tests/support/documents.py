"""Reading the documents' promises: a table's cells, a cell's code spans, the shell commands of a section."""

from __future__ import annotations

import re


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table after a heading, header and separator rows left out."""
    section = text.partition(heading)[2]
    rows = []
    for line in section[section.index("\n|") + 1:].splitlines():
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[2:]


def ticked(cell: str) -> list[str]:
    """The `code spans` of a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def shell_blocks(text: str, heading: str) -> list[str]:
    """The ```sh blocks of the section under a heading (up to the next heading of the same or a higher level)."""
    level = len(heading) - len(heading.lstrip("#"))
    section = text.partition(f"\n{heading}\n")[2]
    end = re.search(rf"^#{{1,{level}}} ", section, re.MULTILINE)
    return re.findall(r"^```sh\n(.*?)^```$", section[:end.start()] if end else section, re.MULTILINE | re.DOTALL)
