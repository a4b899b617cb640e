# expect: memory -- str.ljust to 1 GB
def before_request(request):
    return 'x'.ljust(10 ** 9)
