"""Proxy through the shipped nginx site, with and without proxy.nginx_handoff, against the upstream direct.

Run: .venv/bin/python bench/bench_nginx.py [--seconds 5] [--rounds 3]
One bare WSGI upstream under gunicorn (gthread, keep-alive); Backworks under gunicorn (sync, 2 workers, access
log off, on a unix socket as the systemd unit runs it) with /off/ (Backworks proxies), /on/ (nginx_handoff: true)
and /mock; nginx (worker_processes auto, as Debian ships it) serving config/nginx/backworks.conf with the socket
and listen address swapped for the bench's and the upstream blocks `backworks nginx-upstreams` writes (so /on/
keeps upstream connections alive), plus /on-address/: the site's `location /` offering "1" (a site without the
generated file: the target's address in the URL, a connection per request), and two locations proxying straight
to the upstream ("nginx alone": with a keep-alive pool, and with a connection per request). The mock through
nginx is what any answer from gunicorn costs: the hand-off's ceiling.
wrk -t2 -c32 on each, scenarios interleaved for --rounds rounds; every ratio is taken within its round against
the direct figure of that round, and the median and the per-round values are printed.
Target: through nginx with hand-off >= 0.5x direct.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import UPSTREAM  # noqa: E402
from common import ROOT, Server, free_port, print_row, run_wrk  # noqa: E402

SITE = ROOT / "config" / "nginx" / "backworks.conf"
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

CONFIG = """
server: {{access_log: false, watch: false}}
upstreams:
  api: {{targets: [{{url: "{upstream}"}}], pool_size: 16}}
endpoints:
  relayed: {{path: "/off/{{rest:path}}", mode: proxy, proxy: {{upstream: api, strip_prefix: /off}}}}
  handed: {{path: "/on/{{rest:path}}", mode: proxy, proxy: {{upstream: api, strip_prefix: /on, nginx_handoff: true}}}}
  addressed:
    path: "/on-address/{{rest:path}}"
    mode: proxy
    proxy: {{upstream: api, strip_prefix: /on-address, nginx_handoff: true}}
  canned: {{path: "/mock", mock: {{json: {{id: 1}}}}}}
"""


def nginx_conf(work: Path, port: int, socket: Path, upstream: str) -> Path:
    """An nginx.conf around the shipped site: the bench's socket, port and upstream blocks, and three locations."""
    site = SITE.read_text().replace("unix:/run/backworks/gunicorn.sock", f"unix:{socket}")
    site = site.replace("listen [::]:80;", "").replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("include /etc/backworks/nginx-upstreams*.conf;", f"include {work}/nginx-upstreams.conf;")
    start = site.index("    location / {")
    main_location = site[start:site.index("\n    }\n", start) + 7]
    addressed = main_location.replace("location / {", "location /on-address/ {") \
        .replace("X-Backworks-Handoff $backworks_upstreams;", "X-Backworks-Handoff 1;")
    assert addressed.count("X-Backworks-Handoff 1;") == 1, "the site's location / changed: adapt the bench"
    site = site.replace(main_location, main_location + "\n" + addressed, 1)
    host = upstream.removeprefix("http://")
    alone = (f"location /nginx/ {{ proxy_pass http://{host}/; proxy_http_version 1.1; "
             f"proxy_set_header Connection \"\"; }}\n"
             f"    location /nginx-keepalive/ {{ proxy_pass http://bench_pool/; proxy_http_version 1.1; "
             f"proxy_set_header Connection \"\"; }}\n")
    site = f"upstream bench_pool {{ server {host}; keepalive 32; }}\n" + site
    site = site.replace("    location = /metrics {", f"    {alone}\n    location = /metrics {{", 1)
    temp = "".join(f"{kind}_temp_path {work}/{kind};\n" for kind in TEMP_KINDS)
    conf = work / "nginx.conf"
    user = "user root root;" if os.geteuid() == 0 else ""  # workers must reach the socket in /tmp
    conf.write_text(f"""
        {user}
        daemon off;
        worker_processes auto;
        pid {work}/nginx.pid;
        error_log {work}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            {temp}
            {site}
        }}
    """)
    return conf


class Backworks:
    """Backworks under gunicorn (sync, 2 workers) on a unix socket, as config/systemd/backworks.service runs it."""

    def __init__(self, config: Path, socket: Path):
        cmd = [sys.executable, "-m", "gunicorn", "-c", os.devnull, "-w", "2", "-k", "sync", "-b", f"unix:{socket}",
               "--chdir", str(ROOT), "--log-level", "warning", "wsgi:app"]
        self.proc = subprocess.Popen(cmd, env={**os.environ, "BACKWORKS_CONFIG": str(config)},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        """Stop gunicorn and its workers."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


class Nginx:
    """nginx in the foreground on `conf`."""

    def __init__(self, conf: Path, port: int):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([binary, "-p", str(conf.parent), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20  # until Backworks answers behind it
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited with {self.proc.returncode}: see {conf.parent}/error.log") \
                        from None
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        """Stop nginx and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def main() -> None:
    """Start upstream, Backworks and nginx; run the interleaved rounds; print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    (work / "bench_upstream.py").write_text(UPSTREAM)
    for kind in TEMP_KINDS:
        (work / kind).mkdir()
    stoppable = []
    try:
        upstream = Server("bench_upstream:app", workers=1, worker_class="gthread", chdir=work)
        stoppable.append(upstream)
        (work / "bench.yaml").write_text(CONFIG.format(upstream=upstream.url))
        command = shutil.which("backworks") or str(Path(sys.executable).with_name("backworks"))
        subprocess.run([command, "nginx-upstreams", str(work / "bench.yaml"), "--write",
                        str(work / "nginx-upstreams.conf")], check=True, stdout=subprocess.DEVNULL)
        backworks = Backworks(work / "bench.yaml", work / "gunicorn.sock")
        stoppable.append(backworks)
        port = free_port()
        nginx = Nginx(nginx_conf(work, port, work / "gunicorn.sock", upstream.url), port)
        stoppable.append(nginx)
        groups = {"nginx": nginx.proc.pid, "Backworks": backworks.proc.pid, "upstream": upstream.proc.pid}
        rounds = measure(upstream.url, nginx.url, args.seconds, args.rounds, groups)
    finally:
        for server in reversed(stoppable):
            server.stop()
    report(rounds)


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and its children."""
    total = 0.0
    pids = [root]
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(child) for child in children)
    return total


def measure(direct: str, nginx: str, seconds: int, rounds: int, groups: dict) -> list:
    """Each scenario once per round, interleaved; one {name: wrk result + CPU us per request} per round."""
    scenarios = {"direct": direct + "/item/1?x=1",
                 "nginx alone, keep-alive pool": nginx + "/nginx-keepalive/item/1?x=1",
                 "nginx alone, connection per request": nginx + "/nginx/item/1?x=1",
                 "nginx + Backworks, hand-off off": nginx + "/off/item/1?x=1",
                 "nginx + Backworks, hand-off on": nginx + "/on/item/1?x=1",
                 "hand-off on, address (no blocks)": nginx + "/on-address/item/1?x=1",
                 "nginx + Backworks mock (no upstream)": nginx + "/mock"}
    for url in scenarios.values():
        run_wrk(url, 32, seconds=1, threads=2)  # warm-up: pools, imports
    results = []
    for _ in range(rounds):
        found = {}
        for name, url in scenarios.items():
            before = {group: cpu_seconds(pid) for group, pid in groups.items()}
            result = found[name] = run_wrk(url, 32, seconds=seconds, threads=2)
            served = max(1.0, result["rps"] * seconds)
            result["cpu_us"] = {group: (cpu_seconds(pid) - before[group]) * 1e6 / served
                                for group, pid in groups.items()}
        results.append(found)
    return results


def report(rounds: list) -> None:
    """The median of each scenario, each ratio to direct (median and per round), and CPU per request."""
    print(f"nginx proxy benchmark: wrk -t2 -c32, median of {len(rounds)} interleaved rounds (gthread upstream; "
          f"Backworks gunicorn sync x2; nginx worker_processes auto)")
    for name in rounds[0]:
        print_row(name, {key: median(r[name][key] for r in rounds) for key in ("rps", "p50_ms", "p99_ms")}
                  | {"errors": sum(r[name]["errors"] for r in rounds)})
    for name in list(rounds[0])[1:]:
        ratios = [r[name]["rps"] / r["direct"]["rps"] for r in rounds]
        target = "   (target >= 0.50x)" if name.endswith("hand-off on") else ""
        print(f"  {name} / direct: {median(ratios):.2f}x{target}   per round: "
              f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}")
    # Throughput on a shared machine moves with everyone else's load; CPU spent per request much less.
    print("CPU per request, median over rounds (us; wrk's own not counted):")
    direct_total = median(sum(r["direct"]["cpu_us"].values()) for r in rounds)
    for name in rounds[0]:
        parts = {group: median(r[name]["cpu_us"][group] for r in rounds) for group in rounds[0][name]["cpu_us"]}
        total = median(sum(r[name]["cpu_us"].values()) for r in rounds)
        print(f"  {name:<38} " + "  ".join(f"{group} {value:5.0f}" for group, value in parts.items())
              + f"  total {total:5.0f}  direct/this {direct_total / total:.2f}x")


if __name__ == "__main__":
    main()
