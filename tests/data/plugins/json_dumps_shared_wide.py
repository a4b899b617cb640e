# expect: memory | timeout -- json.dumps of a wide structure whose rows are one shared list
import json
def before_request(request):
    row = ["x"] * 1000
    table = [row] * 1000
    for _ in range(20):
        json.dumps([table] * 10)
