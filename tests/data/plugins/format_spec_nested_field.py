# expect: error -- published RestrictedPython escape: string.Formatter resolving a nested field in a format spec
def before_request(request):
    return {"response": {"status": 200, "body": "{0:{1.__class__.__name__}}".format(1, 2)}}
