# expect: memory | timeout -- int() of 10 M hex digits (no digit limit in base 16), then gcd (no signal check)
import math
def before_request(request):
    x = int("f1e2d3c4b5a6978" * 666666, 16)
    y = int("9a8b7c6d5e4f301" * 666666, 16)
    math.gcd(x, y)
