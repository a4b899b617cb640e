# expect: error -- AttributeError.obj (Python 3.10+) hands back the object a failed lookup ran on
import json
def before_request(request):
    try:
        json.nothing_here
    except AttributeError as e:
        return {"response": {"status": 200, "body": str(e.obj)}}
