# expect: error -- unbound str.format through the `str` name to walk dunder fields
def before_request(request):
    return {"response": {"status": 200, "body": str.format("{0.__class__.__mro__}", request)}}
