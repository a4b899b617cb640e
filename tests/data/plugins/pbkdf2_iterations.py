# expect: memory -- pbkdf2_hmac with 10**7 iterations
import hashlib
def before_request(request):
    return hashlib.pbkdf2_hmac('sha256', b'x', b'y', 10 ** 7)
