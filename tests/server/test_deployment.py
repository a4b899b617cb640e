"""The shipped nginx site in front of real gunicorn: requests, client IP, large bodies, admin, metrics."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.basics import ROOT, free_port, write_config
from tests.helpers.ops import TOKEN, ensure_debian_packages

# Installing nginx on first use may take a while; the tests themselves are quick.
pytestmark = pytest.mark.timeout(600)

SITE = ROOT / "config" / "nginx" / "backworks.conf"
UNIT = ROOT / "config" / "systemd" / "backworks.service"
SHIPPED_SOCKET = "unix:/run/backworks/gunicorn.sock"
SHIPPED_INCLUDE = "include /etc/backworks/nginx-upstreams*.conf;"
MAX_BODY = 8 * 1024 * 1024
CONFIG = f"""
    name: behind-nginx
    server: {{watch: false, max_body_bytes: {MAX_BODY}}}
    admin: {{token: {TOKEN}}}
    endpoints:
      hello: {{path: /hello, mock: {{json: {{hello: world}}}}}}
      upload:
        path: /upload
        methods: [POST]
        mock: {{json: {{received: "{{{{ body | length }}}}"}}}}
"""


def site_for_test(socket_path: Path, port: int, workdir: Path) -> str:
    """The shipped site with the socket, the listen address and the upstream blocks' include moved to the test's."""
    site = SITE.read_text()
    for needle in (SHIPPED_SOCKET, SHIPPED_INCLUDE, "listen 80;", "listen [::]:80;"):
        assert needle in site, f"{SITE} no longer contains {needle!r}"
    return (site.replace(SHIPPED_SOCKET, f"unix:{socket_path}")
            .replace(SHIPPED_INCLUDE, f"include {workdir}/nginx-upstreams*.conf;")
            .replace("listen [::]:80;", "")
            .replace("listen 80;", f"listen 127.0.0.1:{port};"))


class Nginx:
    """A real nginx in the foreground, serving the shipped site from a generated nginx.conf.

    `upstreams`: the text of the hand-off's upstream blocks file (`backworks nginx-upstreams`), or None for none.
    """

    def __init__(self, binary: str, workdir: Path, socket_path: Path, upstreams: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        if upstreams is not None:
            (workdir / "nginx-upstreams.conf").write_text(upstreams)
        user = "user root root;" if os.geteuid() == 0 else ""  # workers must reach the socket in tmp_path
        temp = "".join(f"{kind}_temp_path {workdir}/{kind};\n" for kind in
                       ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(f"""
            {user}
            daemon off;
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log info;
            events {{ worker_connections 256; }}
            http {{
                access_log {workdir}/access.log;
                {temp}
                {site_for_test(socket_path, self.port, workdir)}
            }}
        """)
        check = subprocess.run([binary, "-t", "-p", str(workdir), "-c", str(self.conf)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([binary, "-p", str(workdir), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def stop(self) -> None:
        """Stop nginx (fast shutdown) and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


@pytest.fixture(scope="module")
def nginx_binary():
    return ensure_debian_packages("nginx", ["nginx-light"])


class SystemdService:
    """gunicorn started the way config/systemd/backworks.service starts it, with paths moved into tmp."""

    def __init__(self, workdir: Path, config: Path):
        self.config = config
        self.run_dir = workdir / "run"  # stands for RuntimeDirectory=backworks (/run/backworks)
        self.run_dir.mkdir()
        settings = unit_settings()

        def moved(text: str) -> str:
            return text.replace("/opt/backworks", str(ROOT)).replace("/run/backworks", str(self.run_dir))

        env = dict(item.split("=", 1) for item in settings["Environment"])
        env = {key: moved(value) for key, value in env.items()}
        env.update(BACKWORKS_CONFIG=str(config), BACKWORKS_WORKERS="1")  # what /etc/default/backworks may set
        self.socket_path = Path(env["BACKWORKS_BIND"].removeprefix("unix:"))
        self.log_path = workdir / "service.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(moved(settings["ExecStart"][0]).split(),
                                     cwd=moved(settings["WorkingDirectory"][0]),
                                     env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_until_healthy(self, url: str, seconds: float = 20) -> None:
        """Wait for /healthz through `url` (the proxy in front) to answer 200; fail with the service's log."""
        deadline = time.monotonic() + seconds
        while requests.get(url + "/healthz", timeout=5).status_code != 200:
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        """What the service logged."""
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop it as systemd would (KillSignal=SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.log.close()


def unit_settings() -> dict:
    """The [Service] settings of the shipped unit: {key: [values]}."""
    settings: dict = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture(scope="module")
def stack(nginx_binary, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    service = SystemdService(tmp, write_config(tmp, CONFIG))
    proxy = Nginx(nginx_binary, tmp / "nginx", service.socket_path)
    try:
        service.wait_until_healthy(proxy.url)
        yield proxy, service
    finally:
        proxy.stop()
        service.stop()


def get_from(source_ip: str, port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET through a connection whose source address is `source_ip` (any 127.x address works)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source_ip, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_requests_reach_backworks_through_nginx(stack):
    proxy, _ = stack
    resp = requests.get(proxy.url + "/hello", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"hello": "world"}
    assert resp.headers["X-Request-Id"]
    missing = requests.get(proxy.url + "/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_client_ip_is_the_real_peer_and_spoofed_forwarding_headers_are_ignored(stack):
    proxy, _ = stack
    status, _, _ = get_from("127.0.0.2", proxy.port, "/hello",
                            {"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https"})
    assert status == 200
    rows = requests.get(proxy.url + "/_backworks/api/requests?limit=5", timeout=10,
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()["requests"]
    hello = next(r for r in rows if r["path"] == "/hello")
    assert hello["client_ip"] == "127.0.0.2"
    assert hello["scheme"] == "http"
    assert hello["headers"]["x-forwarded-for"] == "203.0.113.66, 127.0.0.2"


def test_client_ip_of_a_browser_on_the_nginx_host_is_its_loopback_address_not_empty(stack):
    proxy, _ = stack
    status, headers, _ = get_from("127.0.0.1", proxy.port, "/hello?from=host")
    assert status == 200
    rows = requests.get(proxy.url + "/_backworks/api/requests?limit=5", timeout=10,
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()["requests"]
    hello = next(r for r in rows if r["path"] == "/hello" and r["query"] == "from=host")
    assert (hello["client_ip"], hello["headers"]["x-forwarded-for"]) == ("127.0.0.1", "127.0.0.1")


def test_large_bodies_pass_and_oversized_ones_get_json_413(stack):
    proxy, _ = stack
    five_mb = b"x" * (5 * 1024 * 1024)
    resp = requests.post(proxy.url + "/upload", data=five_mb, timeout=30)
    assert resp.status_code == 200
    assert resp.json() == {"received": str(len(five_mb))}
    over_backworks = requests.post(proxy.url + "/upload", data=b"x" * (MAX_BODY + 1), timeout=30)
    assert over_backworks.status_code == 413
    assert over_backworks.json()["error"] == {
        "code": "payload_too_large",
        "message": f"request body is {MAX_BODY + 1} bytes; the limit is {MAX_BODY} (server.max_body_bytes)"}
    over_nginx = requests.post(proxy.url + "/upload", data=b"x" * (17 * 1024 * 1024), timeout=30)
    assert over_nginx.status_code == 413
    assert over_nginx.json()["error"]["code"] == "payload_too_large"
    assert "nginx client_max_body_size" in over_nginx.json()["error"]["message"]


def test_admin_through_nginx_requires_the_token(stack):
    proxy, _ = stack
    missing = requests.get(proxy.url + "/_backworks/api/status", timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = requests.get(proxy.url + "/_backworks/api/status", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "the admin token is wrong"
    good = requests.get(proxy.url + "/_backworks/api/status", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=10)
    assert good.status_code == 200 and good.json()["name"] == "behind-nginx"


def test_dashboard_and_its_assets_load_through_nginx(stack):
    proxy, _ = stack
    page = requests.post(f"{proxy.url}/_backworks/", data={"token": TOKEN}, timeout=10)
    assert page.status_code == 200 and 'id="endpoints"' in page.text
    access_log = proxy.conf.parent / "access.log"
    deadline = time.monotonic() + 5
    while "POST /_backworks/ " not in access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "POST /_backworks/ " in access_log.read_text()
    assert TOKEN not in access_log.read_text()  # the login form posts the token: no URL carries it
    script = requests.get(proxy.url + "/_backworks/static/dashboard.js", timeout=10)
    assert script.status_code == 200 and "Authorization" in script.text
    assert requests.get(proxy.url + "/_backworks/", timeout=10).status_code == 401


def test_metrics_through_nginx_only_from_the_host_itself(stack):
    proxy, _ = stack
    assert "backworks_requests_total" in requests.get(proxy.url + "/metrics", timeout=10).text
    status, _, _ = get_from("127.0.0.2", proxy.port, "/metrics")
    assert status == 403


def test_nginx_answers_json_502_when_gunicorn_is_down(nginx_binary, tmp_path):
    proxy = Nginx(nginx_binary, tmp_path / "nginx", tmp_path / "nobody-listens.sock")
    try:
        resp = requests.get(proxy.url + "/hello", timeout=10)
    finally:
        proxy.stop()
    assert resp.status_code == 502
    assert resp.json() == {"error": {"code": "bad_gateway", "message": "Backworks is not answering"}}


def test_service_keeps_socket_and_metrics_in_its_runtime_directory(stack):
    proxy, service = stack
    assert service.socket_path.is_socket() and service.socket_path.parent == service.run_dir
    assert requests.get(proxy.url + "/hello", timeout=10).status_code == 200
    assert list((service.run_dir / "metrics").glob("counter_*.db"))
    assert (service.run_dir / "gunicorn.ctl").is_socket()  # gunicornc's control socket, per instance
    assert unit_settings()["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
