# expect: invalid -- a header value the server cannot encode (not latin-1) in a short-circuit answer
def before_request(request):
    return {"response": {"status": 200, "headers": {"x-snow": "\u2603"}, "body": "x"}}
