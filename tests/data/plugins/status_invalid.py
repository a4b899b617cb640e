# expect: invalid -- status 999
def before_request(request):
    return {'response': {'status': 999, 'body': 'x'}}
