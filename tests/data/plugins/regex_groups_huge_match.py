# expect: memory | timeout -- re2 capture groups over a 5 M-character match (300 ms of C++ per search)
import re
def before_request(request):
    text = "a" * 5000000
    for _ in range(3):
        re.search("(a*)(a*)", text)
