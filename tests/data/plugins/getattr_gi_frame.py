# expect: error -- published RestrictedPython escape: generator gi_frame reached through getattr strings
def before_request(request):
    g = (x for x in [1])
    frame = getattr(g, "gi_" + "frame")
    return {"response": {"status": 200, "body": str(getattr(frame, "f_" + "globals"))}}
