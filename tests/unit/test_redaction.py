"""One redactor, as a property: generated secrets never reach a log line, an error, a repr, doctor or the journal.

Secrets are drawn so that every 4-character window holds one of the letters Q X J K V W, which nothing the
toolkit writes on these paths contains: a window of a secret (in any form it can be written in: as is,
percent-encoded, JSON- or repr-escaped) found in an output can only be a leak, whole or in part.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from bot import redact as redaction
from bot.commands import boundary
from bot.commands.doctor import Finding, render_json, render_table
from bot.errors import ConfigError
from bot.logs import configure_logging, get_logger
from bot.migrate.journal import error_summary, sanitize
from bot.redact import Redactor, forms
from bot.settings.config import Config
from tests.support.environment import IN_CI, TOOLKIT_VARIABLES

MARKERS = "QXJKVW"
WINDOW = 4
OTHERS = "%@/:+#?&' \"\\aé1ßЖ漢✓"
EXAMPLES = settings(max_examples=200, deadline=None, derandomize=IN_CI, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """4–24 characters: markers, each followed by at most two of %, @, /, quotes, unicode and the like."""
    chunks = draw(st.lists(st.tuples(st.sampled_from(MARKERS), st.text(OTHERS, max_size=2)), min_size=4,
                           max_size=8))
    return "".join(marker + rest for marker, rest in chunks)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    """A bot token whose secret half is made of markers, digits, '_' and '-' (the shape Telegram gives)."""
    half = draw(st.lists(st.tuples(st.sampled_from(MARKERS), st.text("0123456789_-", max_size=2)), min_size=20,
                         max_size=24))
    return f"{draw(st.integers(10**5, 10**10))}:" + "".join(marker + rest for marker, rest in half)


@dataclass(frozen=True)
class Secrets:
    """One generated set of secrets, as the environment carries them."""

    password: str
    token: str
    webhook: str
    proxy_password: str

    def environ(self) -> dict[str, str]:
        """The variables that carry them."""
        database = URL.create("postgresql", username="bot", password=self.password, host="127.0.0.1", port=9,
                              database="bot").render_as_string(hide_password=False)
        proxy = URL.create("socks5", username="me", password=self.proxy_password, host="127.0.0.1", port=1080)
        return {"DATABASE_URL": database, "BOT_TOKEN": self.token, "WEBHOOK_URL": "https://bot.example.com/hook",
                "WEBHOOK_SECRET": self.webhook, "TELEGRAM_PROXY": proxy.render_as_string(hide_password=False),
                "LOG_FORMAT": "json", "DB_WAIT_TIMEOUT": "0"}

    def windows(self) -> set[str]:
        """Every 4-character window of every form of every secret that holds a marker letter."""
        found = set()
        for secret in (self.password, self.token.partition(":")[2], self.webhook, self.proxy_password):
            for form in forms(secret) | {secret}:
                found |= {form[i:i + WINDOW] for i in range(len(form) - WINDOW + 1)
                          if any(marker in form[i:i + WINDOW] for marker in MARKERS)}
        return found


webhook_secrets = st.lists(st.tuples(st.sampled_from(MARKERS), st.text("abc019_-", max_size=2)), min_size=4,
                           max_size=12).map(lambda chunks: "".join(marker + rest for marker, rest in chunks))
secret_sets = st.builds(Secrets, passwords(), tokens(), webhook_secrets, passwords())


def leaks(secrets: Secrets, text: str) -> list[str]:
    """The windows of the secrets found in the text."""
    return sorted(window for window in secrets.windows() if window in text)


@contextmanager
def command_environment(monkeypatch: pytest.MonkeyPatch, secrets: Secrets) -> Iterator[None]:
    """The secrets in the environment and a redactor of this example's own, as a command process has them."""
    for name in TOOLKIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in secrets.environ().items():
        monkeypatch.setenv(name, value)
    with monkeypatch.context() as scoped:
        scoped.setattr(redaction, "PROCESS", Redactor())
        yield


def logged_lines(fmt: str, secrets: Secrets) -> str:
    """What our loggers, a stdlib logger and a logged traceback write, each carrying the secrets."""
    configure_logging("INFO", fmt)
    stream = io.StringIO()
    every = f"{secrets.password} {secrets.token} {secrets.webhook} {secrets.proxy_password}"
    with redirect_stderr(stream):
        get_logger("bot.test").info("carrying", value=every, nested={"inner": [every]}, url=secrets.environ())
        logging.getLogger("alembic.runtime.migration").warning("foreign line %s", every)
        try:
            raise RuntimeError(f"driver said {every}")
        except RuntimeError as error:
            get_logger("bot.test").error("failed", exc_info=error)
    return stream.getvalue()


@EXAMPLES
@given(secrets=secret_sets)
def test_no_output_path_shows_a_secret_whole_or_in_part(monkeypatch: pytest.MonkeyPatch, secrets: Secrets) -> None:
    """Logs (JSON and console), the boundary's error line, reprs, doctor, chat text and journal rows leak nothing."""
    with command_environment(monkeypatch, secrets):
        config = boundary.prepare()  # registers the secrets as every command does
        outputs = {"json logs": logged_lines("json", secrets), "console logs": logged_lines("console", secrets),
                   "config repr": repr(config) + str(config), "url repr": repr(config.database_url),
                   "summary": json.dumps(config.summary(), default=str),
                   "doctor": render_table(config, [Finding("database", "ok", "reachable")])
                   + render_json(config, [Finding("database", "ok", "reachable")]),
                   "chat text": redaction.redact(f"migration failed: {secrets.environ()}", config.secrets()),
                   "journal": sanitize(f"failed with {secrets.environ()}")
                   + error_summary(RuntimeError(f"{secrets.password} {secrets.webhook}"))}
        configure_logging("INFO", "json")
        stream = io.StringIO()

        def command(_config: Config) -> None:
            raise ConfigError(f"the value {secrets.password} and {secrets.token} were refused", "because",
                              f"not {secrets.proxy_password}")

        with redirect_stderr(stream), pytest.raises(SystemExit):
            boundary.run(command)
        outputs["error line"] = stream.getvalue()
    found = {path: leaks(secrets, text) for path, text in outputs.items()}
    assert not any(found.values()), f"leaked: {found}"
    json_lines = [json.loads(line) for line in outputs["json logs"].splitlines()]
    events = [str(line["event"]) for line in json_lines]
    assert events[0] == "carrying" and events[1].startswith("foreign line ***") and events[2] == "failed"


@EXAMPLES
@given(secret=passwords())
def test_redactor_blanks_every_form_a_secret_takes(secret: str) -> None:
    """A registered secret is replaced as written, percent-encoded and escaped; shorter ones are left alone."""
    redactor = Redactor()
    redactor.add([secret, "abc"])
    for form in forms(secret):
        assert form not in redactor.redact(f"before {form} after"), form
    assert redactor.redact("abc stays") == "abc stays", "secrets under 4 characters would blank ordinary words"


def test_patterns_catch_secrets_nobody_registered() -> None:
    """A URL's password, a bot token and password=… are blanked; MySQL's "using password: YES" stays readable."""
    redactor = Redactor()
    assert redactor.redact("postgresql://bot:s3cret@db/bot") == "postgresql://bot:***@db/bot"
    assert redactor.redact("token 123456789:AAH1testtokenvalue-abcdefghijklmnop here") == "token *** here"
    assert redactor.redact("password='p w' and secret=abc, then") == "password=*** and secret=***, then"
    kept = 'Access denied for user "root" (using password: YES); check DATABASE_URL'
    assert redactor.redact(kept) == kept
