# expect: timeout -- pure Python loop
def before_request(request):
    while True:
        pass
