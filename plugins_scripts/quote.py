"""Runtime handler example: handle(request) *is* the endpoint (see the `quote` endpoint in config/backworks.yaml).

GET /quote/{sku}?qty=N -> {"sku", "qty", "unit_price", "total", "vat"}; 404 for an unknown sku, 400 for a bad qty.
"""


def handle(request):
    sku = request["path_params"]["sku"].lower()
    prices = config["prices"]
    if sku not in prices:
        return {"status": 404, "json": {"error": {"code": "unknown_sku", "message": "no price for " + sku}}}
    qty_text = request["query"].get("qty", "1")
    if not isinstance(qty_text, str) or not qty_text.isdigit() or int(qty_text) < 1:
        return {"status": 400, "json": {"error": {"code": "bad_qty", "message": "qty must be a positive integer"}}}
    qty = int(qty_text)
    net = prices[sku] * qty
    state.incr("quotes:" + sku)
    return {"sku": sku, "qty": qty, "unit_price": prices[sku], "vat": round(net * config["vat"], 2),
            "total": round(net * (1 + config["vat"]), 2)}
