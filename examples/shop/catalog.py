"""The catalog service the shop proxies: a tiny read-only JSON API (standard library only).

Run it: python examples/shop/catalog.py --port 9101
Routes: GET /products (?category=kitchen), GET /products/{sku}, GET /health.
"""
from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The prices here are the ones the shop charges: backworks.yaml repeats them in the checkout's config
# (a test checks that the two lists agree).
PRODUCTS = [
    {"sku": "kettle", "name": "Kettle", "category": "kitchen", "price": 29.5},
    {"sku": "teapot", "name": "Teapot", "category": "kitchen", "price": 18.0},
    {"sku": "mug", "name": "Mug", "category": "kitchen", "price": 6.25},
    {"sku": "lamp", "name": "Desk lamp", "category": "home", "price": 42.0},
]


class CatalogHandler(BaseHTTPRequestHandler):
    """Answers the catalog routes with JSON."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        """List products, show one, or say the service is healthy."""
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts == ["health"]:
            return self.answer(200, {"status": "ok"})
        if parts == ["products"]:
            category = parse_qs(url.query).get("category", [None])[0]
            items = [p for p in PRODUCTS if category in (None, p["category"])]
            return self.answer(200, {"items": items, "total": len(items)})
        if len(parts) == 2 and parts[0] == "products":
            for product in PRODUCTS:
                if product["sku"] == parts[1]:
                    return self.answer(200, product)
            return self.answer(404, {"error": {"code": "not_found", "message": f"no product {parts[1]!r}"}})
        return self.answer(404, {"error": {"code": "not_found", "message": f"no route {url.path}"}})

    def answer(self, status: int, payload: dict) -> None:
        """Send one JSON response."""
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
        """Stay quiet: Backworks logs every request that reaches the catalog."""


def main() -> None:
    """Serve the catalog until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), CatalogHandler)
    print(f"catalog on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
