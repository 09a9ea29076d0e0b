#!/usr/bin/env python3
"""An application that is not WSGI: any program listening on $PORT."""

import http.server
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("Hello from a command app on port %s (instance %s), path %s\n" % (
            os.environ["PORT"], os.environ.get("SILVER_INSTANCE_NAME", "?"), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass  # the journal does not need a line per request


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
