# expect: timeout -- catastrophic backtracking (re is google-re2: linear)
import re
def before_request(request):
    text = 'a' * 5000 + '!'
    while True:
        re.match('(a+)+$', text)
