#!/usr/bin/env bash
# Run the shop on SQLite: the catalog service on CATALOG_PORT (default 9101), then Backworks on PORT (8000).
# Data (shop.db, captures.db) goes to examples/shop/data/. Ctrl-C stops both.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "no $PY: run 'bash scripts/run.sh' (or: python3 -m venv .venv && .venv/bin/pip install -e .) first" >&2; exit 1; }
DATA="${SHOP_DATA:-$HERE/data}"
mkdir -p "$DATA"
CATALOG_PORT="${CATALOG_PORT:-9101}"
"$PY" "$HERE/catalog.py" --port "$CATALOG_PORT" &
CATALOG_PID=$!
trap 'kill "$CATALOG_PID" 2>/dev/null || true' EXIT INT TERM
export SHOP_CATALOG_URL="http://127.0.0.1:$CATALOG_PORT"
export SHOP_DATABASE_URL="${SHOP_DATABASE_URL:-sqlite:///$DATA/shop.db}"
export SHOP_CAPTURE_STORE="${SHOP_CAPTURE_STORE:-sqlite:///$DATA/captures.db}"
echo "shop on http://127.0.0.1:${PORT:-8000} (admin key: \${SHOP_ADMIN_KEY:-dev-admin-key}); Ctrl-C stops it"
"$ROOT/.venv/bin/backworks" serve "$HERE/backworks.yaml" --port "${PORT:-8000}"
