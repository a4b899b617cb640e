# expect: error -- an exception carrying a Counter of two equal 64-level lists: its repr sorts them, in the host
import collections
def deep():
    item = []
    for _ in range(64):
        item = [item, item]
    return item
def before_request(request):
    counts = collections.Counter()
    counts["a"] = deep()
    counts["b"] = deep()
    raise ValueError(counts, 1)
