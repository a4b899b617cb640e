# expect: load_error -- except* exception groups
def before_request(request):
    try:
        pass
    except* ValueError:
        pass
