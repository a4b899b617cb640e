"""Add a header to every response (after_response).

config: {name: "X-Powered-By", value: "Backworks"}
"""


def after_response(request, response):
    name = config.get("name", "X-Powered-By").lower()
    headers = dict(response["headers"])
    headers[name] = config.get("value", "Backworks")
    return dict(response, headers=headers)
