# expect: invalid -- returning a list instead of a dict
def before_request(request):
    return [1, 2, 3]
