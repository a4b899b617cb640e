# expect: error -- format_map attribute walk
def before_request(request):
    return {'response': {'body': '{x.__class__}'.format_map({'x': 1})}}
