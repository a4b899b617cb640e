# expect: load_error -- opening a socket
import socket
def before_request(request):
    socket.create_connection(('127.0.0.1', 80))
