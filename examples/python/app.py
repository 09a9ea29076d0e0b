"""A small WSGI application showing what toppcloud gives an app."""

import json
import os

import greeting  # from lib/python, which toppcloud puts on sys.path

# update_fetch requests land here before the new version goes live; the
# counter file shows they ran (in $TEMP, emptied on every update).
_MARK = os.path.join(os.environ.get("TEMP", "/tmp"), "updated")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/update":
        if not environ.get("silverlining.update"):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"only toppcloud may call this\n"]
        with open(_MARK, "w") as f:
            f.write(os.environ.get("SILVER_INSTANCE_NAME", ""))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"update done\n"]
    if path == "/env":
        keys = sorted(k for k in os.environ if k.startswith(("SILVER_", "CONFIG_")))
        data = {k: os.environ[k] for k in keys}
        data["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "")
        data["PATH_INFO"] = path
        data["updated_by"] = open(_MARK).read() if os.path.exists(_MARK) else ""
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data, indent=2).encode() + b"\n"]
    body = "<h1>%s</h1><p>instance %s, mounted at %r</p>\n" % (
        greeting.text(),
        os.environ.get("SILVER_INSTANCE_NAME", "?"),
        environ.get("SCRIPT_NAME", "") or "/",
    )
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body.encode()]
