"""Black-box tests of the shop example: its catalog service and real gunicorn (2 sync workers) on SQLite."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers.basics import ctrl_c_stops, free_port
from tests.helpers.gunicorn import Gunicorn

HERE = Path(__file__).resolve().parent
ADMIN = {"X-Api-Key": "test-admin-key"}
RATE_LIMIT = 100  # per client per minute per worker, lowered for the last test


def start_catalog(port: int) -> subprocess.Popen:
    """The example's catalog service on `port`, once it answers."""
    proc = subprocess.Popen([sys.executable, str(HERE / "catalog.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the catalog service did not start")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The shop (config in place, data in a temporary folder) and its catalog service, for the module."""
    data = tmp_path_factory.mktemp("shop")
    port = free_port()
    catalog = start_catalog(port)
    env = {"SHOP_CATALOG_URL": f"http://127.0.0.1:{port}", "SHOP_DATABASE_URL": f"sqlite:///{data}/shop.db",
           "SHOP_CAPTURE_STORE": f"sqlite:///{data}/captures.db", "SHOP_ADMIN_KEY": ADMIN["X-Api-Key"],
           "BACKWORKS__PLUGINS__RATE_LIMIT__CONFIG__LIMIT": str(RATE_LIMIT)}
    server = Gunicorn(HERE / "backworks.yaml", workers=2, worker_class="sync", env=env)
    server.catalog = catalog
    server.captures = data / "captures.db"
    yield server
    server.stop()
    catalog.kill()
    catalog.wait(5)


def new_cart(url: str, *lines) -> int:
    """Create a cart with (sku, qty) lines; return its id."""
    cart = requests.post(url + "/carts", json={"customer": "ann"}, timeout=5)
    assert cart.status_code == 201, cart.text
    for sku, qty in lines:
        item = requests.post(url + "/cart_items", json={"cart_id": cart.json()["id"], "sku": sku, "qty": qty},
                             timeout=5)
        assert item.status_code == 201, item.text
    return cart.json()["id"]


def checkout(url: str, body) -> requests.Response:
    return requests.post(url + "/checkout", json=body, timeout=5)


def recorded(captures: Path) -> list:
    """(method, path, query, status) of every recorded exchange."""
    if not captures.exists():
        return []
    with sqlite3.connect(captures) as conn:
        try:
            query = "SELECT method, path, query, status FROM backworks_captures ORDER BY id"
            return conn.execute(query).fetchall()
        except sqlite3.OperationalError:  # the writer has not created the table yet
            return []


def test_catalog_is_proxied_to_the_service_and_recorded(shop):
    products = requests.get(shop.url + "/catalog/products", timeout=5)
    assert products.status_code == 200
    assert [p["sku"] for p in products.json()["items"]] == ["kettle", "teapot", "mug", "lamp"]
    home = requests.get(shop.url + "/catalog/products", params={"category": "home"}, timeout=5).json()
    assert home == {"items": [{"sku": "lamp", "name": "Desk lamp", "category": "home", "price": 42.0}],
                    "total": 1}
    missing = requests.get(shop.url + "/catalog/products/spoon", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "no product 'spoon'"}}
    wanted = {("GET", "/catalog/products", "", 200), ("GET", "/catalog/products", "category=home", 200),
              ("GET", "/catalog/products/spoon", "", 404)}
    deadline = time.monotonic() + 10
    while not wanted <= set(recorded(shop.captures)) and time.monotonic() < deadline:
        time.sleep(0.1)  # a writer thread per worker stores exchanges in batches
    assert wanted <= set(recorded(shop.captures))


def test_checkout_prices_are_the_catalogs(shop):
    config = yaml.safe_load((HERE / "backworks.yaml").read_text())
    prices = config["endpoints"]["checkout"]["runtime"]["config"]["prices"]
    catalog = requests.get(shop.url + "/catalog/products", timeout=5).json()["items"]
    assert prices == {p["sku"]: p["price"] for p in catalog}


def test_checkout_turns_the_cart_into_an_order_once(shop):
    cart_id = new_cart(shop.url, ("kettle", 2), ("mug", 1), ("mug", 2))
    placed = checkout(shop.url, {"cart_id": cart_id})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["lines"] == [{"sku": "kettle", "qty": 2, "unit_price": 29.5, "amount": 59.0},
                              {"sku": "mug", "qty": 3, "unit_price": 6.25, "amount": 18.75}]
    assert (order["cart_id"], order["customer"], order["total"], order["status"]) == (cart_id, "ann", 77.75,
                                                                                     "placed")
    assert requests.get(shop.url + f"/carts/{cart_id}", timeout=5).json()["status"] == "checked_out"
    assert requests.get(shop.url + f"/admin/orders/{order['id']}", headers=ADMIN, timeout=5).json() == order
    again = checkout(shop.url, {"cart_id": cart_id})
    assert again.status_code == 409
    assert again.json() == {"error": {"code": "cart_checked_out",
                                      "message": f"cart {cart_id} is already checked out"}}


def test_checkout_refuses_carts_it_cannot_order(shop):
    bad = checkout(shop.url, {"cart_id": "7", "coupon": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"] == {"code": "validation_failed",
                                   "message": "unknown field 'coupon' (allowed: cart_id)"}
    zero = checkout(shop.url, {"cart_id": 0})
    assert zero.json()["error"]["message"] == "cart_id must be a positive integer"
    missing = checkout(shop.url, {"cart_id": 999999})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    empty = checkout(shop.url, {"cart_id": new_cart(shop.url)})
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "cart_empty")
    cart_id = new_cart(shop.url, ("spoon", 1), ("teapot", 10), ("teapot", 10), ("teapot", 1))
    invalid = checkout(shop.url, {"cart_id": cart_id})
    assert invalid.status_code == 400
    assert invalid.json()["error"] == {
        "code": "invalid_cart",
        "message": "the cart cannot be ordered: spoon: is not in the catalog; teapot: quantity 21 is over "
                   "the limit of 20",
        "details": [{"field": "spoon", "message": "is not in the catalog"},
                    {"field": "teapot", "message": "quantity 21 is over the limit of 20"}]}
    assert requests.get(shop.url + f"/carts/{cart_id}", timeout=5).json()["status"] == "open"


def test_concurrent_checkouts_of_one_cart_make_one_order(shop):
    cart_id = new_cart(shop.url, ("lamp", 1))
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda _: checkout(shop.url, {"cart_id": cart_id}).status_code, range(8)))
    assert statuses == [201] + [409] * 7
    orders = requests.get(shop.url + "/admin/orders", params={"cart_id": cart_id}, headers=ADMIN, timeout=5)
    assert orders.json()["total"] == 1


def test_admin_routes_need_the_api_key(shop):
    for headers in ({}, {"X-Api-Key": "guess"}):
        refused = requests.get(shop.url + "/admin/orders", headers=headers, timeout=5)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "ApiKey"
        assert refused.json() == {"error": {"code": "unauthorized",
                                            "message": "missing or unknown X-Api-Key header"}}
    assert requests.delete(shop.url + "/admin/orders/1", timeout=5).status_code == 401
    order = checkout(shop.url, {"cart_id": new_cart(shop.url, ("teapot", 1))}).json()
    paid = requests.patch(shop.url + f"/admin/orders/{order['id']}", json={"status": "paid"}, headers=ADMIN,
                          timeout=5)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    listed = requests.get(shop.url + "/admin/orders", params={"status": "paid"}, headers=ADMIN, timeout=5)
    assert [o["id"] for o in listed.json()["items"]] == [order["id"]]


def test_catalog_answers_from_its_recordings_while_the_service_is_down(shop):
    requests.get(shop.url + "/catalog/products/kettle", timeout=5)
    deadline = time.monotonic() + 10
    while ("GET", "/catalog/products/kettle", "", 200) not in recorded(shop.captures):
        assert time.monotonic() < deadline, "the exchange was not recorded"
        time.sleep(0.1)
    shop.catalog.kill()
    shop.catalog.wait(5)
    replayed = requests.get(shop.url + "/catalog/products/kettle", timeout=5)
    assert replayed.status_code == 200
    assert replayed.json() == {"sku": "kettle", "name": "Kettle", "category": "kitchen", "price": 29.5}
    assert replayed.headers["X-Backworks-Fallback"] == "replay; reason=upstream_unreachable"
    never = requests.get(shop.url + "/catalog/products/never-seen", timeout=5)
    assert never.status_code == 502
    error = never.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert error["message"].endswith("; the replay fallback had no answer: no recorded exchange matches GET "
                                     "/catalog/products/never-seen (matching on method, path, query)")


def test_rate_limit_answers_429_past_the_limit(shop):
    # The counters are per worker (no SHOP_STATE_URL): past 2 x the limit every request is over it.
    for sent in range(1, 2 * RATE_LIMIT + 2):  # noqa: B007 (`sent` is read after the loop)
        response = requests.get(shop.url + "/carts/999999", timeout=5)
        if response.status_code == 429:
            break
        assert response.status_code == 404
    assert response.status_code == 429, f"no 429 after {sent} requests"
    assert response.json() == {"error": {"code": "rate_limited",
                                         "message": f"more than {RATE_LIMIT} requests in 60 s"}}
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    admin = requests.get(shop.url + "/admin/orders", headers=ADMIN, timeout=5)
    assert admin.status_code == 200  # the admin route has no rate limit


def test_run_script_serves_the_shop_with_its_catalog(tmp_path):
    port, catalog_port = free_port(), free_port()
    env = {**os.environ, "PORT": str(port), "CATALOG_PORT": str(catalog_port), "SHOP_DATA": str(tmp_path)}
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen(["bash", str(HERE / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=ctrl_c_stops)
    try:
        deadline, response = time.monotonic() + 30, None
        while response is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/catalog/products/mug", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.2)
        assert response is not None, (tmp_path / "run.log").read_text(errors="replace")
        assert response.json() == {"sku": "mug", "name": "Mug", "category": "kitchen", "price": 6.25}
        assert (tmp_path / "shop.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the script stops the catalog on its way out
        proc.wait(15)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{catalog_port}/health", timeout=2)
