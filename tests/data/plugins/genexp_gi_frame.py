# expect: load_error -- generator expression gi_frame
def before_request(request):
    g = (x for x in [1])
    return g.gi_frame
