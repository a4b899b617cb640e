# expect: invalid -- CR/LF in a header value (response splitting)
def before_request(request):
    return {'response': {'status': 200, 'headers': {'x-a': 'a\r\nSet-Cookie: evil=1'}, 'body': ''}}
