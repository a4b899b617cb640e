# expect: timeout | memory -- defaultdict.fromkeys bypassed the dict.fromkeys wrapper: millions of keys in C per call
import collections
def before_request(request):
    keys = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 400000
    for _ in range(10):
        collections.defaultdict.fromkeys(keys)
