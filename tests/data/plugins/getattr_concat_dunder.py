# expect: error -- getattr with a computed dunder name
def before_request(request):
    name = '_' * 2 + 'class' + '_' * 2
    return getattr(1, name)
