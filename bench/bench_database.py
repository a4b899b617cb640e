"""Database endpoint vs hand-written Flask + SQLAlchemy Core, same table and queries, SQLite and PostgreSQL.

Run: .venv/bin/python bench/bench_database.py [--seconds 3] [--rounds 3] [--postgres URL]
Both apps run under gunicorn (sync, 2 workers); wrk drives GET /things/{id} and a list of 20 rows
(count + page, the same JSON shape). Target: Backworks / hand-written >= 0.85.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import textwrap
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Server, print_row, run_wrk  # noqa: E402

from backworks.database.engine import build_table, normalise_url  # noqa: E402

ROWS = 500
TABLE = "bench_things"
FIELDS = {
    "name": {"type": "string", "required": True, "max_length": 80},
    "price": {"type": "number"},
    "qty": {"type": "integer"},
    "active": {"type": "boolean"},
    "created_at": {"type": "datetime"},
}
FIELDS_YAML = "\n".join(f"        {name}: {{type: {spec['type']}}}" for name, spec in FIELDS.items())
HAND_WRITTEN = textwrap.dedent('''
    import json, os
    import sqlalchemy as sa
    from flask import Flask, Response, abort, request

    engine = sa.create_engine(os.environ["BENCH_DB_URL"])
    things = sa.Table("bench_things", sa.MetaData(), autoload_with=engine)
    app = Flask(__name__)

    def as_json(row):
        item = dict(row._mapping)
        if item["created_at"] is not None:
            item["created_at"] = item["created_at"].isoformat() + "Z"
        return item

    def reply(payload, headers=None):
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return Response(body, mimetype="application/json", headers=headers)

    @app.get("/things/<int:thing_id>")
    def get_thing(thing_id):
        with engine.connect() as conn:
            row = conn.execute(sa.select(things).where(things.c.id == thing_id)).first()
        if row is None:
            abort(404)
        return reply(as_json(row))

    @app.get("/things")
    def list_things():
        limit = min(int(request.args.get("limit", 20)), 100)
        offset = int(request.args.get("offset", 0))
        with engine.connect() as conn:
            rows = conn.execute(sa.select(things).order_by(things.c.id).limit(limit).offset(offset)).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(things)).scalar_one()
        return reply({"items": [as_json(r) for r in rows], "total": total, "limit": limit, "offset": offset},
                     {"X-Total-Count": str(total)})
''')


def seed(url: str) -> None:
    """Create the table exactly as the database endpoint declares it, filled with ROWS rows."""
    engine = sa.create_engine(normalise_url(url))
    table = build_table(sa.MetaData(), TABLE, FIELDS, "id")
    start = dt.datetime(2024, 1, 1)
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        conn.execute(table.insert(), [{"name": f"thing {i}", "price": i * 1.25, "qty": i % 17, "active": i % 2 == 0,
                                       "created_at": start + dt.timedelta(minutes=i)} for i in range(ROWS)])
    engine.dispose()


def measure(label: str, url: str, work: Path, seconds: int, connections: int, rounds: int) -> dict:
    """Run both apps on one database; return {(app, target): wrk result}."""
    seed(url)
    config = work / f"{label}.yaml"
    config.write_text(f'server: {{access_log: false, watch: false}}\ndatabase: {{url: "{url}"}}\n'
                      f"endpoints:\n  things:\n    path: /things\n    mode: database\n    database:\n"
                      f"      table: {TABLE}\n      create_table: false\n      fields:\n{FIELDS_YAML}\n")
    servers = {
        "hand-written": Server("hand_written:app", chdir=work, ready_path="/things/1",
                               env={"BENCH_DB_URL": normalise_url(url)}),
        "Backworks": Server("wsgi:app", env={"BACKWORKS_CONFIG": str(config)}, ready_path="/things/1"),
    }
    results = {}
    try:
        for target, path in (("get", "/things/42"), ("list", "/things?limit=20&offset=40")):
            print(f"{label} {target} ({path}), {connections} connections, median of {rounds} alternating runs:")
            runs: dict = {name: [] for name in servers}
            for _ in range(rounds):  # alternate the apps so background noise hits both alike
                for name, server in servers.items():
                    runs[name].append(run_wrk(server.url + path, connections, seconds, threads=2))
            for name, measured in runs.items():
                results[(name, target)] = sorted(measured, key=lambda r: r["rps"])[len(measured) // 2]
                print_row(name, results[(name, target)])
    finally:
        for server in servers.values():
            server.stop()
    return results


def postgres_reachable(url: str) -> bool:
    """True when the PostgreSQL server answers."""
    try:
        engine = sa.create_engine(normalise_url(url), connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-db-"))
    (work / "hand_written.py").write_text(HAND_WRITTEN)
    databases = {"SQLite": f"sqlite:///{work / 'bench.db'}"}
    if postgres_reachable(args.postgres):
        databases["PostgreSQL"] = args.postgres
    else:
        print(f"PostgreSQL not reachable at {args.postgres}: skipped")
    print(f"{ROWS} rows; gunicorn sync, 2 workers; wrk {args.seconds}s per run, {args.rounds} rounds")
    summary = []
    for label, url in databases.items():
        results = measure(label, url, work, args.seconds, args.connections, args.rounds)
        for target in ("get", "list"):
            ratio = results[("Backworks", target)]["rps"] / results[("hand-written", target)]["rps"]
            summary.append(f"{label:<10} {target:<4}: Backworks {results[('Backworks', target)]['rps']:8.0f} req/s, "
                           f"hand-written {results[('hand-written', target)]['rps']:8.0f} req/s, "
                           f"ratio {ratio:.2f} (target >= 0.85)")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
