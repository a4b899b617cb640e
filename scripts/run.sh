#!/usr/bin/env bash
# Install Backworks into .venv and serve the example config with gunicorn on http://127.0.0.1:8000.
#   BIND=0.0.0.0:9000 bash scripts/run.sh           another address or port (gunicorn --bind syntax)
#   BACKWORKS_CONFIG=api.yaml bash scripts/run.sh   another config
# The install runs only when pyproject.toml changed since the last one (stamp in .venv); Ctrl-C stops.
set -eu
cd "$(dirname "$0")/.."
BIND="${BIND:-127.0.0.1:8000}"
export BACKWORKS_CONFIG="${BACKWORKS_CONFIG:-config/backworks.yaml}"
stamp=.venv/.backworks-install-stamp
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"

pip_install() {  # pip's progress, one line per package; pip's own exit status
    .venv/bin/python -m pip install "$@" 2>&1 | grep --line-buffered -E "^(Collecting|Installing|Successfully|ERROR)"
    return "${PIPESTATUS[0]}"
}

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] || [ ! -x .venv/bin/gunicorn ]; then
    echo "==> installing Backworks and its dependencies into .venv (pyproject.toml changed; about 30 s the first time)"
    pip_install --upgrade pip && pip_install -e . || { echo "==> install failed (see above)"; exit 1; }
    echo "$wanted" > "$stamp"
else
    echo "==> dependencies up to date (pyproject.toml unchanged since the last install)"
fi

echo "==> starting gunicorn on $BIND with $BACKWORKS_CONFIG"
.venv/bin/gunicorn --bind "$BIND" wsgi:app &
server=$!
stopping=0
trap 'stopping=1; kill -TERM "$server" 2>/dev/null || true' INT TERM

case "$BIND" in
    unix:*) url="" ;;
    *) host="${BIND%:*}"; port="${BIND##*:}"
       case "$host" in 0.0.0.0|"") host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
       url="http://$host:$port" ;;
esac
if [ -n "$url" ]; then
    for _ in $(seq 1 300); do
        kill -0 "$server" 2>/dev/null || break
        if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
                "$url/healthz" 2>/dev/null; then
            echo "==> Backworks is up: $url/  (try: curl $url/hello/ann)"
            if [ "$BACKWORKS_CONFIG" = config/backworks.yaml ] && [ -z "${BACKWORKS_ADMIN_TOKEN:-}" ]; then
                echo "    dashboard: $url/_backworks/  (admin token: dev-admin-token)"
            fi
            echo "    stop it with Ctrl-C"
            break
        fi
        sleep 0.2
    done
else
    echo "==> listening on $BIND; stop it with Ctrl-C"
fi
status=0
wait "$server" || status=$?
# Ctrl-C interrupts that wait while gunicorn is still shutting down: wait for it to finish.
if [ "$stopping" = 1 ]; then status=0; wait "$server" || status=$?; fi
exit "$status"
