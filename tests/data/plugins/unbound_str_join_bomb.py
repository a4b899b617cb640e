# expect: memory -- unbound str.join through the `str` name to dodge the bound-method size guard
def before_request(request):
    sep = "x" * 10 ** 6
    return str.join(sep, ["a"] * 10000)
