# expect: memory | timeout -- appending 16 MB chunks forever
def before_request(request):
    chunks = []
    while True:
        chunks.append('x' * (8 * 1024 * 1024) + str(len(chunks)))
