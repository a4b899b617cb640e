#!/usr/bin/env bash
# Run the multi-tenant notes API on SQLite on PORT (default 8000); data in examples/multi-tenant/data/.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
[ -x "$ROOT/.venv/bin/backworks" ] || { echo "no $ROOT/.venv: run 'bash scripts/run.sh' (or: python3 -m venv .venv && .venv/bin/pip install -e .) first" >&2; exit 1; }
DATA="${TENANTS_DATA:-$HERE/data}"
mkdir -p "$DATA"
export TENANTS_DATABASE_URL="${TENANTS_DATABASE_URL:-sqlite:///$DATA/tenants.db}"
echo "multi-tenant notes on http://127.0.0.1:${PORT:-8000}; Ctrl-C stops it"
exec "$ROOT/.venv/bin/backworks" serve "$HERE/backworks.yaml" --port "${PORT:-8000}"
