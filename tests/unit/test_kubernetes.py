"""deploy/kubernetes/: valid against the Kubernetes schemas offline, and in step with what the code serves and reads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from aiohttp import web
from sqlalchemy.engine import URL

from bot.errors import ExitCode
from bot.settings.loading import load_config
from bot.telegram.listener.health import LIVENESS_PATHS, READINESS_PATH, Check, RuntimeState, add_health_routes
from bot.telegram.outbound.notify import NOTIFY_TIMEOUT
from tests.support.commands import EventStream
from tests.support.database import revision_of
from tests.support.environment import ROOT, TOKEN, TOOLKIT_VARIABLES, clean_env, plain

KUBERNETES = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release still commonly run, and the newest kubernetes-validate knows.
VERSIONS = ("1.28.0", "1.37.0")


def manifests() -> dict[str, dict[str, Any]]:
    """Every object of deploy/kubernetes by `Kind/name`, kustomizations excluded."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


def pod_spec(kind_name: str) -> dict[str, Any]:
    """The pod template spec of a Deployment or Job."""
    spec: dict[str, Any] = manifests()[kind_name]["spec"]["template"]["spec"]
    return spec


def container(kind_name: str, name: str) -> dict[str, Any]:
    """One container (or init container) of a Deployment or Job."""
    spec = pod_spec(kind_name)
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def config_data(*names: str) -> dict[str, str]:
    """The data of these ConfigMaps, merged in order, as envFrom hands it to a container."""
    data: dict[str, str] = {}
    for name in names:
        data.update(manifests()[f"ConfigMap/{name}"]["data"])
    return data


def test_every_manifest_validates_offline_against_the_kubernetes_schemas() -> None:
    """Each object validates strictly (unknown fields rejected) for Kubernetes 1.28 and 1.37; a typo would not."""
    objects = manifests()
    assert {"ConfigMap/bot-config", "Job/bot-migrate", "Deployment/bot", "PodDisruptionBudget/bot",
            "PersistentVolumeClaim/bot-backups", "ConfigMap/bot-webhook", "Service/bot-webhook",
            "Ingress/bot-webhook"} == set(objects)
    for version in VERSIONS:
        for document in objects.values():
            kubernetes_validate.validate(document, version, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(objects["Deployment/bot"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_each_kustomization_lists_its_folders_manifests() -> None:
    """`kubectl apply -k` sees every file: each kustomization names exactly its folder's manifests (and bases)."""
    for kustomization in sorted(KUBERNETES.rglob("kustomization.yaml")):
        folder = kustomization.parent
        listed = yaml.safe_load(kustomization.read_text())["resources"]
        files = {entry for entry in listed if entry.endswith(".yaml")}
        bases = [entry for entry in listed if not entry.endswith(".yaml")]
        assert files == {path.name for path in folder.glob("*.yaml") if path.name != "kustomization.yaml"}
        assert all((folder / base / "kustomization.yaml").is_file() for base in bases), bases
    assert yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"] == ["base"]
    assert "../base" in yaml.safe_load((KUBERNETES / "webhook" / "kustomization.yaml").read_text())["resources"]


def test_probes_ports_and_variables_match_what_the_bot_serves_and_reads() -> None:
    """Probe paths are routes the bot mounts, on the port HEALTH_PORT opens; every variable is one the code reads."""
    bot = container("Deployment/bot", "bot")
    ports = {port["name"]: port["containerPort"] for port in bot["ports"]}
    app = web.Application()

    async def database() -> Check:
        return Check(True, "")

    add_health_routes(app, RuntimeState(mode="polling"), database)
    routes = {resource.canonical for resource in app.router.resources()}
    for probe, expected in (("startupProbe", LIVENESS_PATHS), ("livenessProbe", LIVENESS_PATHS),
                            ("readinessProbe", (READINESS_PATH,))):
        get = bot[probe]["httpGet"]
        assert get["path"] in expected and get["path"] in routes, (probe, get)
        assert ports[get["port"]] == int(config_data("bot-config")["HEALTH_PORT"])
    known = set(TOOLKIT_VARIABLES)
    for names in (("bot-config",), ("bot-config", "bot-webhook")):
        assert set(config_data(*names)) <= known, sorted(set(config_data(*names)) - known)
    # The *_FILE paths are checked against the secret volume in the next test.
    settings = {key: value for key, value in config_data("bot-config").items() if not key.endswith("_FILE")}
    config = load_config(settings, stderr_is_terminal=False)
    assert (config.mode, config.health_host, config.health_port) == ("polling", "0.0.0.0", ports["health"])
    assert config.migrate_on_start is False and config.is_production
    webhook = load_config({**settings, **config_data("bot-webhook"), "WEBHOOK_SECRET": "x" * 32},
                          stderr_is_terminal=False)
    assert webhook.mode == "webhook" and webhook.webhook_port == ports["webhook"] and webhook.webhook_host == "0.0.0.0"
    rule = manifests()["Ingress/bot-webhook"]["spec"]["rules"][0]
    assert rule["host"] == urlsplit(webhook.webhook_url or "").hostname
    assert rule["http"]["paths"][0]["path"] == webhook.webhook_path
    service_port = manifests()["Service/bot-webhook"]["spec"]["ports"][0]
    assert service_port["targetPort"] == "webhook" and rule["http"]["paths"][0]["backend"]["service"]["port"] == \
        {"name": service_port["name"]}
    assert config.shutdown_timeout + NOTIFY_TIMEOUT < pod_spec("Deployment/bot")["terminationGracePeriodSeconds"]
    startup = bot["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > config.db_wait_timeout


def test_pods_run_as_the_images_user_read_only_with_secrets_as_files() -> None:
    """Pods run as the Dockerfile's uid:gid, read-only, secrets mounted where the *_FILE variables point."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\d+):(\d+)\s*$", dockerfile, flags=re.MULTILINE)[-1]
    data = config_data("bot-config")
    for workload, names in (("Deployment/bot", ("wait-for-schema", "bot")), ("Job/bot-migrate", ("migrate",))):
        spec = pod_spec(workload)
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True and (str(context["runAsUser"]), str(context["runAsGroup"])) == user
        assert spec["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for name in names:
            box = container(workload, name)
            assert box["securityContext"]["readOnlyRootFilesystem"] is True
            assert box["securityContext"]["allowPrivilegeEscalation"] is False
            assert box["envFrom"][0] == {"configMapRef": {"name": "bot-config"}}
            mounts = {mount["mountPath"]: mount for mount in box["volumeMounts"]}
            for variable in ("BOT_TOKEN_FILE", "DATABASE_URL_FILE"):
                folder = str(Path(data[variable]).parent)
                assert mounts[folder]["readOnly"] is True
                assert volumes[mounts[folder]["name"]]["secret"]["secretName"] == "bot-secrets"
            writable = {path for path, mount in mounts.items() if not mount.get("readOnly")}
            assert writable <= {"/tmp", data["BACKUP_DIR"]}, writable
    job_mounts = {mount["mountPath"] for mount in container("Job/bot-migrate", "migrate")["volumeMounts"]}
    assert data["BACKUP_DIR"] in job_mounts


def test_the_job_migrates_once_and_never_retries_and_the_deployment_only_verifies() -> None:
    """The Job runs `invoke migrate` with backoffLimit 0; replicas run `invoke start` with MIGRATE_ON_START=false."""
    job = manifests()["Job/bot-migrate"]
    assert job["spec"]["backoffLimit"] == 0 and pod_spec("Job/bot-migrate")["restartPolicy"] == "Never"
    assert container("Job/bot-migrate", "migrate")["args"] == ["invoke", "migrate"]
    assert container("Deployment/bot", "bot")["args"] == ["invoke", "start"]
    assert config_data("bot-config")["MIGRATE_ON_START"] == "false"
    budget = manifests()["PodDisruptionBudget/bot"]["spec"]
    assert budget["selector"] == manifests()["Deployment/bot"]["spec"]["selector"]
    assert manifests()["Deployment/bot"]["spec"]["replicas"] > budget["maxUnavailable"]


def test_the_exit_codes_of_the_job_are_each_explained() -> None:
    """docs/DEPLOYMENT.md's Kubernetes section says what to do for every exit code `invoke migrate` can end with."""
    text = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    section = text.partition("\n## Kubernetes")[2].partition("\n## ")[0]
    assert section, "docs/DEPLOYMENT.md has no Kubernetes section"
    rows = set(re.findall(r"^\|\s*(\d)\s*\|", section, flags=re.MULTILINE))
    assert rows >= {str(int(code)) for code in ExitCode
                    if code not in (ExitCode.CHECK_FAILED, ExitCode.BOT_API_UNREACHABLE)}, rows  # start only


def _as_in_the_pod(value: str, project: Path, tmp_path: Path) -> str:
    """A container path of the manifests, moved under this test's folders (/app is the image's WORKDIR)."""
    if value.startswith("/app/"):
        return str(project / value.removeprefix("/app/"))
    if value.startswith("/run/secrets/"):
        return str(tmp_path / value.removeprefix("/"))
    return value


@pytest.mark.slow
def test_the_init_container_waits_for_the_job_as_written(project: Path, postgres_url: URL, tmp_path: Path) -> None:
    """The init container's loop keeps the replica waiting while the schema is behind, and ends once the Job ran."""
    settings = config_data("bot-config")
    env = clean_env(**{key: _as_in_the_pod(value, project, tmp_path) for key, value in settings.items()})
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    for variable, value in (("BOT_TOKEN_FILE", TOKEN), ("DATABASE_URL_FILE", plain(postgres_url))):
        Path(env[variable]).parent.mkdir(parents=True, exist_ok=True)
        Path(env[variable]).write_text(value + "\n")
    init = container("Deployment/bot", "wait-for-schema")["command"]
    waiting = subprocess.Popen(init, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stream = EventStream(waiting)
    try:
        behind = stream.wait_for("command failed", timeout=60)
        assert behind["exit_code"] == int(ExitCode.CHECK_FAILED) and waiting.poll() is None
        job = subprocess.run(container("Job/bot-migrate", "migrate")["args"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr
        assert revision_of(postgres_url) == "0002"
        assert waiting.wait(timeout=60) == 0
    finally:
        if waiting.poll() is None:
            waiting.kill()
