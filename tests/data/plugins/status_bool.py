# expect: invalid -- status True
def before_request(request):
    return {'response': {'status': True, 'body': 'x'}}
