"""The one redactor: what this process knows to be secret never leaves it in a log, an error, a repr or the journal.

One set of rules for every output path. A registered secret (at least MIN_LENGTH characters: shorter ones
would blank out ordinary words) is replaced in every form it can take in text: as it is, percent-encoded (a URL),
JSON- or repr-escaped (a log line, a traceback). Three patterns catch secrets nobody registered: a URL's
password, a bot token, and `password=…` / `token: …` pairs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_LENGTH = 4
MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")
_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
# `password=…`, `token: …` (quoted, or up to a blank or closing punctuation); MySQL's "using password: YES" is
# about whether one was sent, not the password, and stays.
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)(?!(?:YES|NO)\b)"
                        r"('[^']*'|\"[^\"]*\"|[^\s;,)\]}]+)")
_KEY_WORDS = ("password", "passwd", "pwd", "secret", "token")


class Secret:
    """A string that never shows itself in a repr, a log line or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def forms(value: str) -> set[str]:
    """The ways a secret can be written in text: as is, percent-encoded, and JSON- or repr-escaped."""
    escaped = value.replace("\\", "\\\\")  # inside a longer string's repr, a quote is escaped whichever it is
    found = {value, quote(value, safe=""), quote(value, safe=" +"), quote_plus(value), json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1], ascii(value)[1:-1],
             escaped.replace("'", "\\'"), escaped.replace('"', '\\"')}
    return {form for form in found if len(form) >= MIN_LENGTH}


class Redactor:
    """Known secrets and the patterns of unknown ones, applied the same way to any text."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._longest_first: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        """Remember these secrets (those of at least MIN_LENGTH characters), in all their forms."""
        for value in values:
            if value and len(value) >= MIN_LENGTH:
                self._known |= forms(value)
        self._longest_first = tuple(sorted(self._known, key=len, reverse=True))

    def redact(self, text: str, extra: Iterable[str] = ()) -> str:
        """The text with every known (and `extra`) secret and every secret-shaped pattern replaced by ***."""
        known = self._longest_first
        more = [value for value in extra if value and len(value) >= MIN_LENGTH]
        if more:
            known = tuple(sorted(self._known.union(*map(forms, more)), key=len, reverse=True))
        for secret in known:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text and "@" in text:
            text = _URL_PASSWORD.sub(lambda match: f"{match['scheme']}{match['user']}:{MASK}@", text)
        if ":" in text:
            text = _TOKEN.sub(MASK, text)
        lowered = text.lower()
        if any(word in lowered for word in _KEY_WORDS):
            text = _KEY_VALUE.sub(lambda match: f"{match[1]}{match[2]}{MASK}", text)
        return text


PROCESS = Redactor()  # this process's secrets: registered by the boundary once the configuration is read


def register(values: Iterable[str]) -> None:
    """Secrets to blank out of everything this process writes from now on."""
    PROCESS.add(values)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """The text fit for a log line, an error, a chat message or a journal row."""
    return PROCESS.redact(text, extra)
