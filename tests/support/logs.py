"""The one parser of the toolkit's JSON log lines."""

from __future__ import annotations

import json


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Parse every stderr line as JSON (fails the test on the first line that is not)."""
    events = []
    for line in stderr.splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise AssertionError(f"not a JSON log line: {line!r}") from error
    return events


def events_named(stderr: str, name: str) -> list[dict[str, object]]:
    """The JSON log events with this event name."""
    return [event for event in json_lines(stderr) if event.get("event") == name]
