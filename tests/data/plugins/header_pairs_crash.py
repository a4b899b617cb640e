# expect: invalid -- header pairs with a CR/LF value in a short-circuit answer (pairs once crashed the reply builder)
def before_request(request):
    return {"response": {"status": 200, "headers": [["x-a", "1\r\nSet-Cookie: evil=1"]], "body": "x"}}
