# expect: invalid -- a 101 Switching Protocols short-circuit answer (informational statuses are the server's)
def before_request(request):
    return {"response": {"status": 101, "headers": {"upgrade": "websocket", "connection": "upgrade"}, "body": ""}}
