# expect: load_error -- installing a signal handler
import signal
def before_request(request):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
