# expect: error -- str.format attribute walk
def before_request(request):
    return {'response': {'status': 200, 'body': '{0.__class__.__mro__}'.format(request)}}
