# expect: load_error -- f-string attribute walk
def before_request(request):
    return {'response': {'body': f'{request.__class__}'}}
