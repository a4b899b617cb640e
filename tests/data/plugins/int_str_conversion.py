# expect: error -- int -> str of a huge number
def before_request(request):
    n = 10 ** 4400
    return str(n)
