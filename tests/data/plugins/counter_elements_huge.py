# expect: timeout -- Counter.elements() of a huge count: a C chain repeating one key 10**12 times
import collections
def before_request(request):
    return "b" in collections.Counter({"a": 10 ** 12}).elements()
