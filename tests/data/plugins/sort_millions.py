# expect: memory | timeout -- sorting millions of items in C
def before_request(request):
    items = list(range(1000000)) * 5
    return sorted(items)
