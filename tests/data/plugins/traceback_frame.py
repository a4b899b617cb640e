# expect: load_error -- traceback tb_frame
def before_request(request):
    try:
        1 / 0
    except ZeroDivisionError as e:
        return e.__traceback__.tb_frame.f_globals
