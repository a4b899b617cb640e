# expect: invalid -- returning a 5 MB body
def before_request(request):
    return {'response': {'status': 200, 'body': 'x' * (5 * 1024 * 1024)}}
