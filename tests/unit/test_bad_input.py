"""One rule, as a property: whatever the environment, .env or a flag holds, a command ends in success or in one
line saying what, why and how to fix, with a documented exit code (2 for bad input), never a traceback, and
never a 3-character fragment of the database password or of the token's secret half.

Secrets are drawn from letters that no output of the toolkit contains (Q X J K V W), each followed by at most
one of the URL's delimiters, so every 3-character window of a secret holds one of those letters and finding
it in the output can only mean a leak.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot import paths
from bot.commands import cli
from tests.support.environment import IN_CI, TOOLKIT_VARIABLES, clean_env, free_port

SECRET_LETTERS = "QXJKVW"
URL_DELIMITERS = "%@:/#?&"
DOCUMENTED_EXIT_CODES = {0, 2, 3, 4, 5, 6, 7, 9}
BAD_INPUT = 2
IN_PROCESS_EXAMPLES = 300
FLAG_EXAMPLES = 150
SUBPROCESS_EXAMPLES = 4
# Every example waits for nothing: an unreachable database or Bot API fails at once, unless a variable says more.
QUICK = {"DB_WAIT_TIMEOUT": "0", "BOT_API_WAIT_TIMEOUT": "0", "TELEGRAM_API_URL": "http://127.0.0.1:9",
         "LOG_FORMAT": "json"}
PROPERTY = settings(max_examples=IN_PROCESS_EXAMPLES, deadline=None, derandomize=IN_CI, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass
class Case:
    """One generated input: environment, .env lines, the command, and what a correct run may end with."""

    environ: dict[str, str] = field(default_factory=dict)
    env_file: list[str] | None = None
    command: tuple[str, dict[str, object]] = ("status", {})
    secrets: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The case in a form a failing test can print."""
        return f"environ={self.environ!r} env_file={self.env_file!r} command={self.command!r} bad={self.bad!r}"


def fragments(secret: str) -> set[str]:
    """Every 3-character window of a secret (each holds one of SECRET_LETTERS by construction)."""
    return {secret[index:index + 3] for index in range(len(secret) - 2)}


def secret_text(delimiters: str, *, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Secret letters, each followed by nothing or by one delimiter."""
    pair = st.tuples(st.sampled_from(SECRET_LETTERS), st.sampled_from(["", *delimiters]))
    return st.lists(pair, min_size=min_size, max_size=max_size).map(lambda pairs: "".join(a + b for a, b in pairs))


PASSWORDS = secret_text(URL_DELIMITERS, min_size=3, max_size=8)
TOKEN_SECRETS = secret_text("_-", min_size=20, max_size=26)


@st.composite
def database_urls(draw: st.DrawFn, folder: Path, *, bad: bool) -> tuple[str, str | None, str | None]:
    """(DATABASE_URL, its password, why it is bad or None) over every URL form of the three databases."""
    kind = draw(st.sampled_from(["postgresql", "mysql", "sqlite"]))
    password = draw(PASSWORDS)
    if kind == "sqlite":
        form, why = draw(st.sampled_from([
            ("sqlite:///:memory:", "in-memory SQLite"),
            ("sqlite://", "in-memory SQLite"),
            ("sqlite://data/bot.db", "sqlite:// with two slashes"),
            (f"sqlite://u:{password}@host/bot.db", "a host for SQLite"),
        ] if bad else [(f"sqlite:///{folder}/missing/bot.db", None), (f"sqlite:///{folder}/made.db", None)]))
        return form, password if password in form else None, why
    schemes = (["postgres", "postgresql", "postgresql+psycopg"] if kind == "postgresql"
               else ["mysql", "mysql+aiomysql", "mysql+pymysql", "mariadb", "mariadb+aiomysql"])
    scheme = draw(st.sampled_from(schemes))
    user = draw(st.sampled_from(["postgres" if kind == "postgresql" else "root", "bot", "u@srv"]))
    written = draw(st.sampled_from([password, quote(password, safe="")]))
    port = 5432 if kind == "postgresql" else 3306
    host = draw(st.sampled_from([f"127.0.0.1:{port}", "localhost", "127.0.0.1:1", "nosuchhost.invalid"]))
    database = "prop_missing_db"
    query = draw(st.sampled_from(["", "?sslmode=disable", "?charset=utf8mb4", "?connect_timeout=2"]))
    why = None
    if bad:
        part, value, why = draw(st.sampled_from([
            ("host", "127.0.0.1:99999", "a port out of range"), ("host", "127.0.0.1:port", "a port that is no number"),
            ("host", "bad host", "a host with a space"), ("host", "a..b", "an empty DNS label"),
            ("database", "", "no database name"), ("scheme", "oracle", "an unsupported scheme"),
            ("scheme", "postgresql+asyncpg", "a driver we do not ship")]))
        host, database, scheme = (value if part == "host" else host, value if part == "database" else database,
                                  value if part == "scheme" else scheme)
    return f"{scheme}://{user}:{written}@{host}/{database}{query}", password, why


VARIABLE_VALUES: dict[str, tuple[list[str], list[str]]] = {  # name: (good values, bad values)
    "ENV": (["development", "production", " PRODUCTION "], ["prod", "staging", " "]),
    "LOG_LEVEL": (["DEBUG", "info"], ["verbose", ""]),
    "LOG_FORMAT": (["json"], ["xml"]),
    "MIGRATION_LOCK_TIMEOUT": (["0", "5", "1.5"], ["-1", "soon", "inf", "nan"]),
    "DB_WAIT_TIMEOUT": (["0", "0.2"], ["-3", "x", "1e999"]),
    "BOT_API_WAIT_TIMEOUT": (["0"], ["never", "-1"]),
    "MIGRATE_ON_START": (["true", "0", "yes"], ["maybe"]),
    "WEBHOOK_HOST": (["0.0.0.0"], ["http://x"]),
    "WEBHOOK_PORT": (["8443"], ["0", "70000", "http"]),
    "PORT": (["8081"], ["eighty"]),
    "HEALTH_HOST": (["127.0.0.1"], ["a b"]),
    "HEALTH_PORT": ([str(free_port())], ["-5"]),
    "ADMIN_IDS": (["11,22"], ["abc", "0"]),
    "SHUTDOWN_TIMEOUT": (["8"], ["-1"]),
    "TELEGRAM_API_URL": (["http://127.0.0.1:9"], ["ftp://x", "127.0.0.1"]),
    "TELEGRAM_PROXY": (["socks5://127.0.0.1:9"], ["socks5://", "gopher://x"]),
    "BACKUP_KEEP": (["3"], ["-1", "x"]),
    "BACKUP_BEFORE_MIGRATE": (["false"], ["perhaps"]),
    "ALLOW_DESTRUCTIVE_MIGRATIONS": (["false"], ["perhaps"]),
    "DDL_LOCK_TIMEOUT": (["10"], ["x"]),
    "DDL_STATEMENT_TIMEOUT": (["3600"], ["-2"]),
    "BACKUP_DIR": (["backups", "/tmp/bot-toolkit-backups"], [" "]),
}
FLAGS: dict[str, tuple[list[dict[str, object]], list[dict[str, object]]]] = {  # command: (good, bad) flag sets
    "status": ([{}, {"as_json": True, "check": True}], []),
    "history": ([{"limit": "3", "as_json": True}, {"limit": "0"}], [{"limit": "x"}, {"limit": "-1"}]),
    "doctor": ([{"as_json": True}, {}], []),
    "check": ([{}], []),
    "migrate": ([{"sql": True, "to": "0001"}, {"sql": True}], [{"to": "a b"}, {"to": " "}]),
    "rollback": ([{"sql": True, "steps": "1"}, {"sql": True, "to": "base"}],
                 [{"steps": "0"}, {"steps": "abc"}, {"to": "0001;"}]),
    "stamp": ([{"to": "0001"}], [{"to": ""}]),
    "start": ([{}], []),
}


FAULTS = ["variable", "DATABASE_URL", "BOT_TOKEN", "webhook", ".env", "flags", "secret file"]


@st.composite
def cases(draw: st.DrawFn, folder: Path) -> Case:
    """A whole run: variables, DATABASE_URL in any form, maybe a .env, a command and flags; in about half the
    cases exactly one of them is bad."""
    fault = draw(st.one_of(st.none(), st.sampled_from(FAULTS)))
    case = Case(environ=dict(QUICK))
    bad_variable = draw(st.sampled_from(sorted(VARIABLE_VALUES))) if fault == "variable" else None
    for name, (good, bad) in VARIABLE_VALUES.items():
        if name == bad_variable:
            case.environ[name] = draw(st.sampled_from(bad))
            case.bad.append(name)
        elif draw(st.integers(0, 3)) == 0:
            case.environ[name] = draw(st.sampled_from(good))
    url, password, bad_url = draw(database_urls(folder, bad=fault == "DATABASE_URL"))
    case.environ["DATABASE_URL"] = url
    case.secrets += [password] if password else []
    case.bad += [f"DATABASE_URL: {bad_url}"] if bad_url else []
    token_secret = draw(TOKEN_SECRETS)
    tokens = ([(f"123456789:{token_secret[:12]}", "a short secret half"),
               (f"123456789:{token_secret}%", "a '%' in the token")] if fault == "BOT_TOKEN"
              else [(f"123456789:{token_secret}", None), (None, None)])
    token, bad_token = draw(st.sampled_from(tokens))
    if token is not None:
        case.environ["BOT_TOKEN"] = token
        case.secrets.append(token_secret)
        case.bad += [f"BOT_TOKEN: {bad_token}"] if bad_token else []
    webhooks = ([("https://bot.example.com/hook", None, "WEBHOOK_URL without WEBHOOK_SECRET"),
                 ("https://bot.example.com/hook?x=1", "abc", "a webhook with a query"),
                 ("https://bot.example.com", "a b", "a bad secret")] if fault == "webhook"
                else [(None, None, None), (None, None, None), ("https://bot.example.com/hook", "abc_DEF-123", None)])
    webhook, secret, bad_webhook = draw(st.sampled_from(webhooks))
    case.environ.update({"WEBHOOK_URL": webhook} if webhook else {})
    case.environ.update({"WEBHOOK_SECRET": secret} if secret else {})
    case.bad += [bad_webhook] if bad_webhook else []
    if fault == "secret file" or draw(st.integers(0, 4)) == 0:
        secret_files(draw, case, folder, broken=fault == "secret file")
    if fault == ".env" or draw(st.booleans()):
        case.env_file = draw(env_files(case, broken=fault == ".env"))
    command = draw(st.sampled_from(sorted(FLAGS)))
    good_flags, bad_flags = FLAGS[command]
    flag_is_bad = fault == "flags" and bool(bad_flags)
    case.command = (command, draw(st.sampled_from(bad_flags if flag_is_bad else good_flags)))
    case.bad += [f"flags of {command}"] if flag_is_bad else []
    return case


def secret_files(draw: st.DrawFn, case: Case, folder: Path, *, broken: bool) -> None:
    """Move BOT_TOKEN or DATABASE_URL into a NAME_FILE (Docker/Kubernetes secrets), or get that wrong."""
    name = draw(st.sampled_from([name for name in ("BOT_TOKEN", "DATABASE_URL") if name in case.environ]))
    path = folder / f"{name.lower()}.secret"
    path.write_text(case.environ[name] + "\n", encoding="utf-8")
    how = draw(st.sampled_from(["missing file", "empty file", "both set"])) if broken else "moved"
    if how != "both set":
        case.environ.pop(name)
    if how == "missing file":
        path = folder / "no-such.secret"
    elif how == "empty file":
        path.write_text("\n", encoding="utf-8")
    case.environ[f"{name}_FILE"] = str(path)
    case.bad += [f"{name}_FILE: {how}"] if broken else []


@st.composite
def env_files(draw: st.DrawFn, case: Case, *, broken: bool) -> list[str]:
    """.env lines: comments, blanks, exports, quoted values, sometimes the secrets moved in, sometimes a broken line."""
    lines = draw(st.lists(st.sampled_from(["# a comment", "", "export EXTRA=1", "QUOTED='a value # not a comment'",
                                           "SPACED = spaced"]), max_size=4))
    for name in ("DATABASE_URL", "BOT_TOKEN"):
        if name in case.environ and draw(st.booleans()):
            lines.append(f"{name}='{case.environ.pop(name)}'")
    if broken:
        line = draw(st.sampled_from(['BROKEN="never closed', "not a statement", "KEY='x", "NAME=\"a\" trailing"]))
        lines.insert(draw(st.integers(0, len(lines))), line)
        case.bad.append(".env line that cannot be parsed")
    return lines


@contextlib.contextmanager
def environment(case: Case, folder: Path) -> Iterator[None]:
    """Exactly this case's variables and .env for one in-process run, restored afterwards."""
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name in TOOLKIT_VARIABLES}
    saved_env_file = paths.ENV_FILE
    env_file = folder / ".env"
    env_file.unlink(missing_ok=True)
    if case.env_file is not None:
        env_file.write_text("\n".join(case.env_file) + "\n", encoding="utf-8")
    paths.ENV_FILE = env_file
    os.environ.update(case.environ)
    try:
        yield
    finally:
        for name in TOOLKIT_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(saved)
        paths.ENV_FILE = saved_env_file


def run_in_process(task: Callable[[], None]) -> tuple[int, str, str]:
    """A command inside its error boundary, with stdout and stderr captured: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            task()
            code = 0
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()


def migrated_database(folder: Path) -> None:
    """The SQLite database `made.db` of the generated URLs, at 0001, so commands also succeed or find work."""
    if not (folder / "made.db").exists():
        with environment(Case(environ={**QUICK, "DATABASE_URL": f"sqlite:///{folder}/made.db"}), folder):
            assert run_in_process(lambda: cli.migrate(to="0001"))[0] == 0


def check_outcome(case: Case, code: int, out: str, err: str) -> None:
    """The property itself."""
    event(f"exit {code}")
    event("bad input" if case.bad else "good input")
    context = f"{case.describe()}\nexit {code}\nstdout: {out[-1500:]}\nstderr: {err[-3000:]}"
    assert code in DOCUMENTED_EXIT_CODES, context
    assert "Traceback" not in out + err, context
    leaked = [piece for secret in case.secrets for piece in fragments(secret) if piece in out + err]
    assert not leaked, f"secret fragments {leaked} leaked\n{context}"
    if case.bad:
        assert code == BAD_INPUT, context
    if code and err.strip() and case.environ.get("LOG_FORMAT", "json") == "json":
        events = [json.loads(line) for line in err.splitlines() if line.strip()]
        assert events[-1]["event"] == "command failed" and events[-1]["exit_code"] == code, context
        assert "; " in str(events[-1]["error"]), f"no way to fix it is given\n{context}"


@PROPERTY
@given(data=st.data())
def test_any_environment_env_file_and_flags_end_cleanly(data: st.DataObject, tmp_path: Path) -> None:
    """Generated variables, URLs, .env files and flags: a documented exit code (2 for bad input), no traceback, and
    no fragment of the password or the token's secret half on stdout or stderr."""
    migrated_database(tmp_path)
    case = data.draw(cases(tmp_path))
    name, flags = case.command
    with environment(case, tmp_path):
        code, out, err = run_in_process(lambda: getattr(cli, name)(**flags))
    check_outcome(case, code, out, err)


ANY_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=30)
LIKELY_FLAGS = st.sampled_from(["1", "2", "0", "-1", " 3 ", "+1", "0001", "0002", "head", "heads", "base",
                                "0001@head", "0001,0002", "0001:0002", "９", "1e3", "backups", "."])


@settings(PROPERTY, max_examples=FLAG_EXAMPLES)
@given(command=st.sampled_from(["history-limit", "rollback-steps", "rollback-to", "migrate-to", "stamp-to",
                                "restore-path"]),
       value=st.one_of(ANY_TEXT, LIKELY_FLAGS))
def test_any_flag_text_ends_cleanly(command: str, value: str, tmp_path: Path) -> None:
    """Whatever text a flag carries (any Unicode, lone surrogates from undecodable bytes included): a documented exit
    code and one line, never a traceback."""
    migrated_database(tmp_path)
    case = Case(environ={**QUICK, "DATABASE_URL": f"sqlite:///{tmp_path}/made.db"}, command=(command, {"": value}))
    with environment(case, tmp_path):
        task = {"history-limit": lambda: cli.history(limit=value),
                "rollback-steps": lambda: cli.rollback(steps=value, sql=True),
                "rollback-to": lambda: cli.rollback(to=value, sql=True),
                "migrate-to": lambda: cli.migrate(to=value, sql=True),
                "stamp-to": lambda: cli.stamp(to=value),
                "restore-path": lambda: cli.restore(path=value)}[command]
        code, out, err = run_in_process(task)
    check_outcome(case, code, out, err)


@pytest.mark.slow
@settings(PROPERTY, max_examples=SUBPROCESS_EXAMPLES)
@given(data=st.data())
def test_generated_cases_hold_as_real_invoke_processes(data: st.DataObject, project: Path, tmp_path: Path) -> None:
    """A few generated cases run as real `invoke` processes, where the .env is the project's own file."""
    case = data.draw(cases(tmp_path))
    name, flags = case.command
    (project / ".env").unlink(missing_ok=True)
    if case.env_file is not None:
        (project / ".env").write_text("\n".join(case.env_file) + "\n", encoding="utf-8")
    arguments = [name.replace("_", "-")]
    for flag, value in flags.items():
        option = {"as_json": "json"}.get(flag, flag)
        arguments += [f"--{option}"] if value is True else [f"--{option}", str(value)]
    result = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(project), *arguments],
                            cwd=project, env=clean_env(**case.environ), capture_output=True, text=True, timeout=120,
                            input="")
    check_outcome(case, result.returncode, result.stdout, result.stderr)
