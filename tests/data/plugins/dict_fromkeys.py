# expect: memory | timeout -- dict.fromkeys over a huge range (a long range feeds C consumers at most 1,000,000 items)
def before_request(request):
    return dict.fromkeys(range(10 ** 7))
