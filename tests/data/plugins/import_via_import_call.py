# expect: load_error -- __import__ call
def before_request(request):
    __import__('os').system('id')
