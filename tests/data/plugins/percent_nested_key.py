# expect: memory -- %((k))60000000s: a mapping key with nested parentheses hid the width from the cap
def before_request(request):
    text = "%((k))60000000s" % {"(k)": "x"}
    request["headers"]["x-len"] = str(len(text))
    return request
