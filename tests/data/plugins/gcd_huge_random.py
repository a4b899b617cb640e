# expect: memory | timeout -- math.gcd of two 4,000,000-bit random numbers (quadratic C work)
import math
import random
def before_request(request):
    return math.gcd(random.getrandbits(4000000), random.getrandbits(4000000))
