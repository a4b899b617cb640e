# expect: load_error -- generator gi_frame to reach f_back/f_globals
def gen():
    yield 1
def before_request(request):
    g = gen()
    return g.gi_frame.f_back.f_globals
