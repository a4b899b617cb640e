# expect: timeout -- math.fsum over an endless C iterator
import math
def before_request(request):
    return math.fsum(iter(float, 1.0))
