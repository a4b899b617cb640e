"""Give every request a correlation id the handler (and upstream) sees, and echo it on the response.

config: {header: "x-correlation-id"}
"""
import uuid


def before_request(request):
    name = config.get("header", "x-correlation-id")
    if request["headers"].get(name):
        return None
    headers = dict(request["headers"])
    headers[name] = uuid.uuid4().hex
    return dict(request, headers=headers)


def after_response(request, response):
    name = config.get("header", "x-correlation-id")
    value = request["headers"].get(name)
    if not value:
        return None
    headers = dict(response["headers"])
    headers[name] = value
    return dict(response, headers=headers)
