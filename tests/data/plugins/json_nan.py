# expect: invalid -- NaN in a JSON answer (json.dumps would send the invalid JSON token NaN)
def before_request(request):
    return {"response": {"status": 200, "json": {"ratio": float("nan")}}}
