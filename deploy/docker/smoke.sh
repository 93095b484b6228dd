#!/usr/bin/env bash
# Build the Dockerfile and run the image for real with podman, as root, without any registry:
#   1. a local stand-in for python:3.11-slim (mmdebstrap minbase + python3, pip, venv), imported into podman
#   2. podman build (pip inside the build reaches the package index; the host's CA bundle is mounted read-only)
#   3. `invoke migrate` on the SQLite default in a data volume, with a read-only root filesystem
#   4. `invoke start` against a fake Bot API on the host: a /start gets its reply; /readyz, /metrics, HEALTHCHECK
#   5. non-root user, read-only root, JSON-only logs, SIGTERM -> exit 0 within the grace period
#   6. an arbitrary uid in group 0 on a fresh volume works; a root-owned bind mount gets one clear line (exit 3)
# Not part of the test suite (minutes, root, podman). Needs: podman, mmdebstrap (apt-get install podman
# mmdebstrap), and the project's .venv (for the fake Bot API). Output: one line per check, then a summary.
# SMOKE_WORK=dir keeps the work files (default /tmp/bot-smoke); REBUILD_BASE=1 rebuilds the base image.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=${SMOKE_WORK:-/tmp/bot-smoke}
python=${PYTHON:-$root/.venv/bin/python}
image=localhost/bot-toolkit:smoke
base=docker.io/library/python:3.11-slim
token=123456789:AAH1smoketokenvalue-abcdefghijklmnop
health_port=${SMOKE_HEALTH_PORT:-18081}
container=bot-smoke
volume=bot-smoke-data
mkdir -p "$work"
started=$(date +%s%N)
failures=0

seconds_since() { local tenths=$(( ($(date +%s%N) - $1) / 100000000 )); printf '%d.%d' $((tenths / 10)) $((tenths % 10)); }
elapsed() { printf '%5ss' "$(seconds_since "$started")"; }
say() { echo "$(elapsed)  $*"; }
check() {  # description, command...: prints ok/FAIL with the description
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then say "ok    $what"; else say "FAIL  $what"; failures=$((failures + 1)); fi
}
all_json() { "$python" -c 'import json, sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$1"; }
cleanup() {
  podman rm --force "$container" >/dev/null 2>&1 || true
  [[ -n ${fake_pid:-} ]] && kill "$fake_pid" 2>/dev/null || true
}
trap cleanup EXIT

# podman as root inside a container or VM: runc, cgroupfs, and ulimits within this machine's hard limits
# (podman's defaults exceed them; some sandboxes refuse any process limit above 32768, plenty for a bot).
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$work/containers.conf
# One-shot runs skip the image's HEALTHCHECK (podman would try to set up a systemd timer for it); the bot's
# container keeps it for `podman healthcheck run`, its timer complaints going to podman.log, not the output.
run=(podman run --no-healthcheck)
say "podman $(podman version --format '{{.Client.Version}}'), work folder $work"

if [[ -n ${REBUILD_BASE:-} ]] || ! podman image exists "$base"; then
  say "building the base image (mmdebstrap, Debian bookworm minbase + python3)"
  # Like the official slim image: no documentation, manual pages or translations.
  mmdebstrap --quiet --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$work/base.tar" http://deb.debian.org/debian
  podman import --quiet --change 'CMD ["python3"]' "$work/base.tar" "$base" >/dev/null
fi
say "base image $base: $("${run[@]}" --rm "$base" python3 --version)"

say "building $image"
build_started=$(date +%s)
podman build --quiet --format docker --network host --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --tag "$image" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
size=$(podman image inspect --format '{{.Size}}' "$image")
say "built in $(( $(date +%s) - build_started ))s, $(( size / 1000000 )) MB"
"${run[@]}" --rm "$image" pip freeze --all >"$work/installed.txt"
locked() { "$python" - "$work/installed.txt" requirements.lock <<'PY'
import re, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
installed = dict(line.split("==", 1) for line in open(sys.argv[1]).read().split() if "==" in line)
installed = {canonicalize_name(name): version for name, version in installed.items()}
entries = (Requirement(entry.split(" --hash=")[0]) for entry in re.sub(r"\\\n", " ", open(sys.argv[2]).read())
           .splitlines() if entry.strip() and not entry.lstrip().startswith(("#", "-")))
lock = {canonicalize_name(r.name): next(iter(r.specifier)).version for r in entries  # markers as on the image
        if r.marker is None or r.marker.evaluate({"extra": "", "python_version": "3.11"})}
extra = sorted(set(installed) - set(lock) - {"pip", "setuptools"})
print(f"{len(lock)} locked packages, {len(installed)} installed, unlocked extras: {extra or 'none'}")
sys.exit(0 if not extra and all(installed.get(name) == version for name, version in lock.items()) else 1)
PY
}
check "installed packages are exactly the lock's: $(locked | tail -1)" locked
check "pip check: every installed package's requirements are met" "${run[@]}" --rm "$image" pip check

podman volume rm --force "$volume" >/dev/null 2>&1 || true
podman volume create "$volume" >/dev/null
migrated=0
"${run[@]}" --rm --read-only --volume "$volume:/app/data" "$image" invoke migrate 2>"$work/migrate.log" || migrated=$?
check "invoke migrate (read-only root, SQLite in the data volume): exit $migrated" test "$migrated" = 0
check "migrate logged 'migrations complete'" grep -q '"event": "migrations complete"' "$work/migrate.log"
check "migrate wrote only JSON lines" all_json "$work/migrate.log"

rm -f "$work/fake.url"
"$python" deploy/docker/fake_bot_api.py "$work/fake.url" "$token" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s $work/fake.url ]] && break; sleep 0.1; done
api=$(cat "$work/fake.url")
say "fake Bot API at $api"

podman rm --force "$container" >/dev/null 2>&1 || true
podman run --detach --name "$container" --read-only --network host --volume "$volume:/app/data" \
  --env BOT_TOKEN="$token" --env TELEGRAM_API_URL="$api" --env HEALTH_PORT="$health_port" \
  --env HEALTH_HOST=127.0.0.1 --env ADMIN_IDS=4711 "$image" >/dev/null 2>>"$work/podman.log"
ready() { "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
  "http://127.0.0.1:$health_port/readyz"; }
for _ in $(seq 120); do ready >/dev/null 2>&1 && break; sleep 0.5; done
check "invoke start: /readyz answers 200" ready
for _ in $(seq 100); do grep -q "reply to chat" "$work/fake.log" && break; sleep 0.1; done
check "a /start from the fake Bot API got its reply" grep -q "reply to chat 777" "$work/fake.log"
say "$(grep "reply to chat" "$work/fake.log" || echo 'no reply')"
curl_metrics() { "$python" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "http://127.0.0.1:$health_port/metrics"; }
curl_metrics >"$work/metrics.txt"
check "/metrics counts the update: greet handled once" \
  grep -q 'bot_updates_handled_total{handler="greet",outcome="handled",update_type="message"} 1.0' "$work/metrics.txt"
check "/metrics: this replica is the leader" grep -q '^bot_leader 1.0' "$work/metrics.txt"
check "HEALTHCHECK (python -m bot.probe) passes" podman healthcheck run "$container"
uid=$(podman exec "$container" id -u); gid=$(podman exec "$container" id -g)
check "runs as a non-root user ($uid:$gid)" test "$uid" = 10001 -a "$gid" = 0
check "root filesystem is read-only" bash -c "! podman exec $container touch /app/written 2>/dev/null"
check "the data volume is writable" podman exec "$container" test -w /app/data

stop_started=$(date +%s%N)
podman stop --time 10 "$container" >/dev/null 2>>"$work/podman.log"
stop_seconds=$(seconds_since "$stop_started")
code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
check "SIGTERM -> exit $code in ${stop_seconds}s (grace 10 s)" test "$code" = 0
podman logs "$container" >"$work/start.log" 2>&1
check "start wrote only JSON lines ($(wc -l <"$work/start.log") lines)" all_json "$work/start.log"
check "start logged 'bot stopped' after the drain" grep -q '"event": "bot stopped"' "$work/start.log"
podman rm --force "$container" >/dev/null 2>>"$work/podman.log"

podman volume rm --force "$volume-anyuid" >/dev/null 2>&1 || true
podman volume create "$volume-anyuid" >/dev/null
check "an arbitrary uid in group 0 (123456:0) migrates a fresh volume" \
  "${run[@]}" --rm --read-only --user 123456:0 --volume "$volume-anyuid:/app/data" "$image" invoke migrate
podman volume rm --force "$volume-anyuid" >/dev/null

rm -rf "$work/root-owned" && mkdir -m 0755 "$work/root-owned"
denied=0
"${run[@]}" --rm --read-only --volume "$work/root-owned:/app/data" "$image" invoke migrate 2>"$work/denied.log" \
  || denied=$?
check "a root-owned bind mount: exit 3 ($denied)" test "$denied" = 3
check "... with one JSON line naming /app/data and its owner and mode" \
  grep -q 'the SQLite database folder /app/data is not writable by this process.*owned by 0:0 with mode drwxr-xr-x' \
  "$work/denied.log"
check "... and nothing else (no traceback)" test "$(wc -l <"$work/denied.log")" = 1
say "$("$python" -c 'import json, sys; print(json.loads(open(sys.argv[1]).read())["error"])' "$work/denied.log")"

podman volume rm --force "$volume" >/dev/null
say "done: $failures failed check(s)"
exit $(( failures > 0 ))
