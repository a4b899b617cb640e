"""Checkout: validate a cart against the price list and turn it into an order (runtime handler).

POST /checkout {"cart_id": 1} -> 201 with the order. Reads `carts` and `cart_items`, writes `orders`
through `db` (runtime.tables). A cart is checked out once: the cart's status changes from open to
checked_out in one conditional update, and orders.cart_id is unique, so two concurrent checkouts of one
cart make exactly one order.
"""


def error(status, code, message, details=None):
    payload = {"code": code, "message": message}
    if details:
        payload["details"] = details
    return {"status": status, "json": {"error": payload}}


def read_cart_id(data):
    if not isinstance(data, dict):
        return None, "send {\"cart_id\": <integer>} as JSON (Content-Type: application/json)"
    extra = sorted(set(data) - {"cart_id"})
    if extra:
        return None, "unknown field " + repr(extra[0])[:40] + " (allowed: cart_id)"
    cart_id = data.get("cart_id")
    if isinstance(cart_id, bool) or not isinstance(cart_id, int) or cart_id < 1:
        return None, "cart_id must be a positive integer"
    return cart_id, None


def order_lines(items):
    """Merge the cart's rows by sku and price them; return (lines, problems)."""
    prices = config["prices"]
    quantities = {}
    for item in items:
        quantities[item["sku"]] = quantities.get(item["sku"], 0) + item["qty"]
    lines, problems = [], []
    for sku in sorted(quantities):
        qty = quantities[sku]
        if sku not in prices:
            problems.append({"field": sku, "message": "is not in the catalog"})
        elif qty > config["max_qty_per_product"]:
            problems.append({"field": sku, "message": "quantity " + str(qty) + " is over the limit of " +
                             str(config["max_qty_per_product"])})
        else:
            lines.append({"sku": sku, "qty": qty, "unit_price": prices[sku],
                          "amount": round(prices[sku] * qty, 2)})
    return lines, problems


def handle(request):
    cart_id, problem = read_cart_id(request["json"])
    if problem:
        return error(400, "validation_failed", problem)
    cart = db.get("carts", cart_id)
    if cart is None:
        return error(404, "not_found", "no cart with id " + str(cart_id))
    if cart["status"] != "open":
        return error(409, "cart_checked_out", "cart " + str(cart_id) + " is already checked out")
    listing = db.list("cart_items", {"cart_id": cart_id, "limit": config["max_lines"] + 1})
    if not listing["items"]:
        return error(400, "cart_empty", "cart " + str(cart_id) + " has no items")
    if listing["total"] > config["max_lines"]:
        return error(400, "cart_too_large", "a cart holds at most " + str(config["max_lines"]) + " lines")
    lines, problems = order_lines(listing["items"])
    if problems:
        text = "; ".join(p["field"] + ": " + p["message"] for p in problems)
        return error(400, "invalid_cart", "the cart cannot be ordered: " + text, problems)
    # Claim the cart first: only one request sees it open, whatever the number of workers.
    if db.update("carts", cart_id, {"status": "checked_out"}, {"status": "open"}) is None:
        return error(409, "cart_checked_out", "cart " + str(cart_id) + " is already checked out")
    total = round(sum(line["amount"] for line in lines), 2)
    try:
        order = db.create("orders", {"cart_id": cart_id, "customer": cart["customer"], "lines": lines,
                                     "total": total, "status": "placed"})
    except ValueError as exc:
        db.update("carts", cart_id, {"status": "open"})
        log.warning("checkout of cart " + str(cart_id) + " failed: " + str(exc))
        return error(409, "checkout_failed", str(exc))
    return {"status": 201, "json": order}
