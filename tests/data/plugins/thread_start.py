# expect: load_error -- starting a thread
import threading
def before_request(request):
    threading.Thread(target=lambda: None).start()
