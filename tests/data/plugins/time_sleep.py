# expect: error -- time.sleep is not offered
import time
def before_request(request):
    time.sleep(10)
