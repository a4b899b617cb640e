# expect: timeout -- deque(endless iterator, maxlen=0) consumes in C without keeping anything
import collections
def before_request(request):
    collections.deque(iter(int, 1), maxlen=0)
