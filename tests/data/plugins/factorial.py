# expect: memory -- math.factorial(10**6)
import math
def before_request(request):
    return math.factorial(10 ** 6)
