# expect: error -- an exception carrying a 64-level shared namespace: the failure description repr'd it whole
import types
def before_request(request):
    ns = types.SimpleNamespace()
    for _ in range(64):
        ns = types.SimpleNamespace(a=ns, b=ns)
    raise ValueError(ns, 1)
