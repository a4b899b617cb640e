# expect: error -- format spec reaching object internals through nested fields
def before_request(request):
    return {'response': {'body': '{0[headers].__class__}'.format(request)}}
