# A WSGI test application for the runner's tests.
import json
import os
import sys

import helper_mod  # from lib/python
import sp_mod  # from lib/python3.11/site-packages
import pth_mod  # from a directory a .pth file in site-packages adds
from silversupport.env import is_production
from silversupport.secret import get_secret

KEYS = ['SCRIPT_NAME', 'PATH_INFO', 'REMOTE_ADDR', 'SERVER_NAME', 'silverlining.update',
        'silverlining.internal', 'SILVER_VERSION', 'HTTP_X_TOPPCLOUD_INTERNAL',
        'HTTP_X_TOPPCLOUD_MATCH_PATH', 'HTTP_X_FORWARDED_FOR', 'wsgi.url_scheme']


def application(environ, start_response):
    path = environ['PATH_INFO']
    if path.endswith('/print'):
        print('This is stdout')
        sys.stderr.write('This is stderr\n')
        environ['wsgi.errors'].write('Executed application\n')
        body = b'printed'
    elif path.endswith('/fail'):
        start_response('500 Internal Server Error', [('Content-Type', 'text/plain')])
        return [b'update failed\n']
    elif path.endswith('/crash'):
        raise RuntimeError('crash in the app')
    else:
        data = {
            'environ': {k: environ.get(k) for k in KEYS if k in environ},
            'os_environ': {k: v for k, v in os.environ.items()
                           if k.startswith(('SILVER_', 'CONFIG_', 'TEMP', 'TOPPCLOUD_'))},
            'helper': helper_mod.VALUE,
            'sp': sp_mod.VALUE,
            'pth': pth_mod.VALUE,
            'sitecustomize': os.environ.get('SITECUSTOMIZE_RAN', ''),
            'secret': get_secret(),
            'production': is_production(),
            'name': __name__,
            'first_path': sys.path[:3],
        }
        body = json.dumps(data).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


def other(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'named runner']
