"""toppcloud serve's Python process: the node's bootstrap under a small
threaded WSGI server from the standard library.

    python3 toppcloud_devserver.py

`toppcloud serve` (internal/devserver) starts this with the environment a
node's instance gets (SILVER_VERSION=devel/..., SILVER_INSTANCE_NAME=
localhost, the services' CONFIG_*, and the TOPPCLOUD_* variables
toppcloud_wsgi reads), plus two of its own:

TOPPCLOUD_DEVSERVER_LISTEN_FD  a listening TCP socket, made by toppcloud serve
TOPPCLOUD_DEVSERVER_STATUS_FD  a pipe; "ready" is written to it once the
                               application has loaded

Importing toppcloud_wsgi loads the application exactly as gunicorn's
workers do on a node. If that fails, the bootstrap prints the traceback
and exits with status 4; toppcloud serve shows it in the browser and the
terminal. gunicorn is not needed here: serve proxies every request from
its own front server, one developer sends few requests at a time, and
wsgiref is always there with python3, on Linux and macOS alike.

What differs from a node, on purpose: output written during a request
goes straight to the terminal (not to errors.log), and an exception shows
its traceback in the browser.
"""

import os
import socket
import socketserver
import sys
import traceback
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

REPORTED = 'toppcloud.devel_reported'


class LimitedInput:
    """The request body, ending after Content-Length bytes as gunicorn's
    wsgi.input does (wsgiref gives the raw connection, on which the
    bootstrap's drain, and an application reading to the end, would wait
    for ever)."""

    def __init__(self, stream, length):
        self._stream = stream
        self._left = length

    def read(self, size=-1):
        if self._left <= 0:
            return b''
        if size is None or size < 0 or size > self._left:
            size = self._left
        data = self._stream.read(size)
        self._left -= len(data)
        return data

    def readline(self, size=-1):
        if self._left <= 0:
            return b''
        if size is None or size < 0 or size > self._left:
            size = self._left
        data = self._stream.readline(size)
        self._left -= len(data)
        return data

    def readlines(self, hint=-1):
        lines = []
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)

    def __iter__(self):
        return iter(self.readline, b'')


class DevelHandler(ServerHandler):
    """wsgiref's handler, with the traceback in the 500 page."""

    def log_exception(self, exc_info):
        if self.environ.get(REPORTED):
            return  # the bootstrap printed it already
        try:
            traceback.print_exception(*exc_info, file=sys.__stderr__)
            sys.__stderr__.flush()
        finally:
            exc_info = None

    def error_output(self, environ, start_response):
        body = ('Internal Server Error\n\n%s\n(toppcloud serve shows this traceback; '
                'a node answers a bare 500 and logs it)\n' % traceback.format_exc())
        start_response('500 Internal Server Error', [('Content-Type', 'text/plain; charset=utf-8')],
                       sys.exc_info())
        return [body.encode('utf-8', 'replace')]


class DevelRequestHandler(WSGIRequestHandler):
    """wsgiref's request handler, multithreaded, logging nothing (serve's
    front server logs requests)."""

    def log_message(self, format, *args):
        pass

    def handle(self):
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = 0
        handler = DevelHandler(LimitedInput(self.rfile, length), self.wfile, sys.__stderr__, environ,
                               multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main():
    listen_fd = int(os.environ.pop('TOPPCLOUD_DEVSERVER_LISTEN_FD'))
    status_fd = int(os.environ.pop('TOPPCLOUD_DEVSERVER_STATUS_FD'))

    import toppcloud_wsgi  # loads the application, or exits 4 with the traceback

    bootstrap = toppcloud_wsgi.application
    # Request output straight to the terminal, as the original's
    # development server had it.
    collector = bootstrap.collector
    collector.start_request = lambda: None
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def app(environ, start_response):
        environ['silverlining.devel'] = True
        try:
            return bootstrap(environ, start_response)
        except Exception:
            environ[REPORTED] = True
            raise

    server = ThreadingServer(None, DevelRequestHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=listen_fd)
    host, port = server.socket.getsockname()[:2]
    server.server_address = (host, port)
    server.server_name, server.server_port = 'localhost', port
    server.setup_environ()
    server.set_app(app)
    os.write(status_fd, b'ready\n')
    os.close(status_fd)
    server.serve_forever()


if __name__ == '__main__':
    main()
