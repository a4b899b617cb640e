# expect: error -- random.seed poisoning of a shared generator
import random
def before_request(request):
    random.seed(0)
