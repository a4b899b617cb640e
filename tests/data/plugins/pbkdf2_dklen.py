# expect: memory -- pbkdf2_hmac with a huge dklen: iterations were capped, output blocks were not
import hashlib
def before_request(request):
    return hashlib.pbkdf2_hmac("sha256", b"p", b"s", 100000, 32 * 1000)
