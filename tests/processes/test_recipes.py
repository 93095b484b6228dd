"""The systemd, cron and CI recipes, run exactly as written with the environment each would really have."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import URL

from tests.support.commands import EventStream, run_invoke
from tests.support.database import revision_of
from tests.support.environment import ROOT, TOKEN, plain
from tests.support.fake_telegram import FakeTelegram

UNIT = ROOT / "deploy" / "systemd" / "bot.service"
CRONTAB = ROOT / "deploy" / "cron" / "bot.cron"
WORKFLOW = ROOT / "deploy" / "ci" / "github-actions.yml"
DEPLOYMENT = ROOT / "docs" / "DEPLOYMENT.md"
INSTALL_DIR = "/opt/bot"
# What systemd gives a system service before the unit's own settings (systemd.exec(5), "Environment variables
# in spawned processes"), and what cron gives a job before the crontab's own assignments (crontab(5)).
SYSTEMD_BASE = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"}
CRON_BASE = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}


class Installation:
    """A project copy standing in for /opt/bot (and a folder for /etc), with the virtualenv at .venv."""

    def __init__(self, project: Path, tmp_path: Path) -> None:
        self.project = project
        self.etc = tmp_path / "etc"
        (project / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)

    def path(self, text: str) -> str:
        """A path or command of the recipes with /opt/bot and /etc moved into the test's folders."""
        return text.replace(INSTALL_DIR, str(self.project)).replace("/etc/", f"{self.etc}/")

    def write_operator_env_file(self, **values: str) -> Path:
        """The env file where DEPLOYMENT.md installs .env.example, edited the way its systemd steps say."""
        steps = DEPLOYMENT.read_text(encoding="utf-8").partition("\n## systemd")[2]
        found = re.search(r"\binstall\b[^\n]*?\.env\.example\s+(\S+)", steps)
        assert found, "docs/DEPLOYMENT.md's systemd steps no longer install .env.example"
        target = Path(self.path(found.group(1)))
        text = (ROOT / ".env.example").read_text(encoding="utf-8")
        for name, value in values.items():
            text, count = re.subn(rf"^(# )?{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
            text += "" if count else f"{name}={value}\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target


def env_file_values(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile= (comments with # or ;, surrounding quotes removed)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#;" and "=" in stripped:
            key, _, value = stripped.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def unit_service(text: str) -> list[tuple[str, str]]:
    """The [Service] section's settings in order (a key may repeat)."""
    section = text.partition("[Service]")[2].partition("\n[")[0]
    return re.findall(r"^(\w+)=(.*)$", section, flags=re.MULTILINE)


def systemd_environment(settings: list[tuple[str, str]], installation: Installation) -> dict[str, str]:
    """The unit's environment as systemd builds it: Environment= first, then EnvironmentFile= overrides it."""
    env = dict(SYSTEMD_BASE)
    for key, value in settings:
        if key == "Environment":
            env.update(assignment.split("=", 1) for assignment in shlex.split(value))
    for key, value in settings:
        if key == "EnvironmentFile":
            path = Path(installation.path(value.removeprefix("-")))
            if path.is_file() or not value.startswith("-"):
                env.update(env_file_values(path))
    return env


@pytest.mark.slow
def test_systemd_unit_starts_production_even_with_a_copied_example_env(project: Path, tmp_path: Path,
                                                                      sqlite_url: URL, telegram: FakeTelegram) -> None:
    """The unit's ExecStart, with systemd's environment and .env.example installed as told, migrates and polls."""
    installation = Installation(project, tmp_path)
    installation.write_operator_env_file(DATABASE_URL=plain(sqlite_url), BOT_TOKEN=TOKEN,
                                         TELEGRAM_API_URL=telegram.url)
    settings = unit_service(UNIT.read_text(encoding="utf-8"))
    env = systemd_environment(settings, installation)
    service = dict(settings)
    process = subprocess.Popen(shlex.split(installation.path(service["ExecStart"])), env=env,
                               cwd=installation.path(service["WorkingDirectory"]), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    stream = EventStream(process)
    try:
        stream.wait_for("polling started", timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, stream.stderr()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert stream.events("configuration loaded")[0]["environment"] == "production"
    assert revision_of(sqlite_url) == "0002"


def test_systemd_restart_limits_are_what_deployment_md_says() -> None:
    """StartLimitBurst counts the first start too: the guide's number of restarts and minutes match the unit."""
    settings = dict(re.findall(r"^(\w+)=(.*)$", UNIT.read_text(encoding="utf-8"), flags=re.MULTILINE))
    said = re.search(r"the first start and (\d+) restarts within (\d+) minutes",
                     DEPLOYMENT.read_text(encoding="utf-8").partition("\n## systemd")[2])
    assert said, "docs/DEPLOYMENT.md no longer says how often a failing start is retried"
    assert int(said.group(1)) == int(settings["StartLimitBurst"]) - 1
    assert int(said.group(2)) * 60 == int(settings["StartLimitIntervalSec"])
    assert "4" not in settings["RestartPreventExitStatus"].split(), "exit 4 is retried"


def crontab() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The crontab's assignments and its jobs as (user, command), per crontab(5) for /etc/cron.d files."""
    assignments, jobs = {}, []
    for line in CRONTAB.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 6)
        if re.match(r"^\s*[A-Za-z_]\w*\s*=", line):  # a job line starts with a time field, never a letter
            name, _, value = line.partition("=")
            assignments[name.strip()] = value.strip()
        else:
            assert len(fields) == 7, f"not a cron.d job line: {line!r}"
            jobs.append((fields[5], fields[6]))
    return assignments, jobs


def run_cron_jobs(installation: Installation) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every job of the crontab as cron runs it: its SHELL -c the command, in the user's home; what it prints."""
    assignments, jobs = crontab()
    results = {}
    for user, command in jobs:
        assert not re.search(r"(?<!\\)%", command), "cron turns an unescaped % into a newline and stdin"
        env = {**CRON_BASE, "HOME": installation.project.as_posix(), "LOGNAME": user, **assignments}
        task = re.search(r"invoke (\S+)", command)
        assert task is not None
        results[task.group(1)] = subprocess.run([env["SHELL"], "-c", installation.path(command)], env=env,
                                                cwd=env["HOME"], capture_output=True, text=True, timeout=120)
    return results


@pytest.mark.slow
def test_cron_checks_read_the_services_env_file_and_mail_what_they_found(project: Path, tmp_path: Path,
                                                                        sqlite_url: URL,
                                                                        telegram: FakeTelegram) -> None:
    """From cron's bare environment the checks see the bot's database; a failure mails stdout, a pass mails nothing."""
    installation = Installation(project, tmp_path)
    installation.write_operator_env_file(DATABASE_URL=plain(sqlite_url), BOT_TOKEN=TOKEN,
                                         TELEGRAM_API_URL=telegram.url)
    env = {**CRON_BASE, "DATABASE_URL": plain(sqlite_url)}
    assert run_invoke(project, "migrate", "--to", "0001", env=env).returncode == 0
    telegram.fail_methods["getMe"] = (401, "Unauthorized")

    behind = run_cron_jobs(installation)
    assert set(behind) == {"status", "check", "doctor"}
    assert "0002  track user activity" in behind["status"].stdout, "the pending revision (stdout) is in the mail"
    assert "users.last_seen_at" in behind["check"].stdout and "0001" in behind["check"].stdout
    assert re.search(r"bot api\s+FAIL", behind["doctor"].stdout) and "sqlite" in behind["doctor"].stdout
    assert str(sqlite_url.database) in behind["doctor"].stdout, "doctor checked the bot's own database"
    assert re.search(r"environment\s+production", behind["doctor"].stdout), "ENV=production as in the unit"

    assert run_invoke(project, "migrate", env=env).returncode == 0
    telegram.fail_methods.clear()
    at_head = run_cron_jobs(installation)
    assert {name: result.stdout + result.stderr for name, result in at_head.items()} == {
        "status": "", "check": "", "doctor": ""}, "a passing check mails nothing"
    assert not (project / "data").exists(), "no check fell back to the default SQLite file"


def release_steps() -> tuple[dict[str, str], list[str]]:
    """The release job's env and the commands of its `run:` steps, in order."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    job = workflow["jobs"]["release"]
    return dict(job["env"]), [step["run"] for step in job["steps"] if "run" in step]


@pytest.mark.slow
def test_ci_release_pipeline_releases_a_new_revision(project: Path, postgres_url: URL) -> None:
    """The release job's steps, run in order as Actions runs them, take a database one revision behind to head."""
    assert run_invoke(project, "migrate", "--to", "0001", env={**CRON_BASE, "DATABASE_URL": plain(postgres_url)},
                      ).returncode == 0
    secrets = {"secrets.DATABASE_URL": plain(postgres_url), "secrets.BOT_TOKEN": TOKEN, "vars.ADMIN_IDS": "11"}
    job_env, steps = release_steps()
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "CI": "true", "HOME": str(project)}
    env.update({name: re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda match: secrets[match.group(1)], value)
                for name, value in job_env.items()})
    installs = [step for step in steps if step.startswith("pip install")]
    assert installs == ["pip install --no-deps --require-hashes -r requirements.lock && pip check"], (
        "the one step this test's virtualenv stands in for (installed from the lock the same way)")
    ran = []
    for step in steps:
        if step in installs:
            continue
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step], env=env,
                                cwd=project, capture_output=True, text=True, timeout=180)
        ran.append((step, result.returncode))
        assert result.returncode == 0, f"the release stops at {step!r} (exit {result.returncode}):\n{result.stderr}"
    assert revision_of(postgres_url) == "0002"
    order = [step for step, _ in ran]
    assert order.index("invoke review") < order.index("invoke migrate") < order.index("invoke check")
