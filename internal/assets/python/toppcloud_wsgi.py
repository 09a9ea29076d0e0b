"""toppcloud's WSGI bootstrap: gunicorn loads ``toppcloud_wsgi:application``.

The systemd unit of an instance (see internal/agent/runner) starts::

    gunicorn --pythonpath /usr/local/share/toppcloud/python ... toppcloud_wsgi:application

with the instance's environment: the SILVER_* and CONFIG_* variables the
application sees, and these, which are ours:

TOPPCLOUD_INSTANCE_DIR    /var/www/APP.DATE_NNN, the uploaded application
TOPPCLOUD_RUNNER_KIND     "python" (a .py file) or "paste" (a Paste Deploy .ini)
TOPPCLOUD_RUNNER          the runner's path, relative to the instance directory
TOPPCLOUD_RUNNER_NAME     the WSGI object (python) or app section (paste); optional
TOPPCLOUD_SECRET_FILE     the node secret, read by silversupport.secret
TOPPCLOUD_INTERNAL_TOKEN  proves a request comes from the agent (update_fetch);
                          removed from os.environ before the application loads

Importing this module loads the application once per gunicorn worker, as
the original's master-runner did per mod_wsgi process. If that fails, the
traceback goes to stderr (the journal, which the deploy shows) and the
worker exits with gunicorn's "app failed to load" status, which stops
gunicorn: a broken application never serves a page, and no error page ever
shows the environment to a client.
"""

import fcntl
import glob
import hmac
import importlib.util
import os
import runpy
import site
import sys
import threading
import time
import traceback
import urllib.parse

# Request headers the front server (Caddy) and the agent set. Caddy deletes
# client-sent copies of the match-path header; the internal header is only
# believed when it carries this instance's token.
MATCH_PATH_KEY = 'HTTP_X_TOPPCLOUD_MATCH_PATH'
INTERNAL_KEY = 'HTTP_X_TOPPCLOUD_INTERNAL'

# gunicorn's exit status for "the application could not be loaded"; the
# arbiter halts with it instead of restarting the worker forever.
APP_LOAD_ERROR = 4


class ErrorCollector:
    """A file-like object that gathers what is written during a request.

    It stands in for sys.stdout, sys.stderr and wsgi.errors. Inside a request
    (per thread) the text is kept and appended to errors.log as one chunk
    when the request ends; outside a request it goes to the real stream,
    which is the journal.
    """

    def __init__(self, filename, fallback):
        self.filename = filename
        self._fallback = fallback
        self._local = threading.local()

    # The file-like interface.

    def write(self, text):
        buf = getattr(self._local, 'buffer', None)
        if buf is None:
            return self._fallback.write(text)
        if isinstance(text, bytes):
            text = text.decode('utf-8', 'replace')
        buf.append(text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if getattr(self._local, 'buffer', None) is None:
            self._fallback.flush()

    def isatty(self):
        return False

    def __getattr__(self, name):
        # encoding, fileno, buffer, ...: those of the real stream.
        return getattr(self._fallback, name)

    # Request bracketing.

    def start_request(self):
        self._local.start = time.time()
        self._local.buffer = []

    def finish_request(self, environ):
        buf = getattr(self._local, 'buffer', None)
        self._local.buffer = None
        if not buf:
            return
        text = ''.join(buf)
        if not text:
            return
        start = self._local.start
        elapsed = time.time() - start
        date = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start))
        name = '%s %s%s' % (environ.get('REQUEST_METHOD', '?'),
                            environ.get('SCRIPT_NAME', ''), environ.get('PATH_INFO', ''))
        if not text.endswith('\n'):
            text += '\n'
        chunk = ('Errors for request %s (%s in UTC, %fsec):\n%sFinish errors for request %s (%s in UTC)\n'
                 % (name, date, elapsed, text, name, date))
        self._append(chunk)

    def _append(self, chunk):
        data = chunk.encode('utf-8', 'replace')
        try:
            fd = os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as e:
            self._fallback.write('toppcloud: cannot open %s (%s); the request output was:\n' % (self.filename, e))
            self._fallback.write(chunk)
            self._fallback.flush()
            return
        try:
            # Several gunicorn workers append to the same file: one locked
            # write per chunk keeps chunks whole.
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)


# How much of a request body the application left unread is read and
# dropped after the response (see drain).
DRAIN_LIMIT = 64 << 20


def drain(environ):
    """Read and drop what the application left of the request body.

    The router opens one connection per request and gunicorn closes it
    after the response. Body bytes still unread when a unix socket closes
    make the kernel reset the connection, and the router then answers 502
    for a response the application did send (a POST to a page that ignores
    its form, say). Reading the rest first closes the connection cleanly."""
    stream = environ.get('wsgi.input')
    if stream is None:
        return
    left = DRAIN_LIMIT
    try:
        while left > 0:
            chunk = stream.read(min(65536, left))
            if not chunk:
                return
            left -= len(chunk)
    except Exception:  # a client that went away: nothing to protect
        pass


class _Finisher:
    """Wraps a response iterable so the request's output is written out
    after the server has closed it (output during iteration counts), and
    the request body is drained."""

    def __init__(self, app_iter, done, environ):
        self._app_iter = app_iter
        self._done = done
        self._environ = environ

    def __iter__(self):
        return iter(self._app_iter)

    def close(self):
        try:
            close = getattr(self._app_iter, 'close', None)
            if close is not None:
                close()
        finally:
            drain(self._environ)
            self._done()


def _add_site_dir(path):
    """addsitedir (so .pth files work), but in front of the system's
    packages: the libraries an application ships win over Debian's."""
    before = list(sys.path)
    site.addsitedir(path)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before


def _version_dirs(instance_dir):
    """lib/python3.X directories, this interpreter's version first."""
    own = os.path.join(instance_dir, 'lib', 'python%d.%d' % sys.version_info[:2])
    dirs = sorted(glob.glob(os.path.join(instance_dir, 'lib', 'python3*')))
    dirs = [d for d in dirs if os.path.isdir(d) and d != own]
    if os.path.isdir(own):
        dirs.insert(0, own)
    return dirs


def activate_path(instance_dir):
    """Put the application's libraries on sys.path the way the original
    did: lib/python as a site dir, lib/python3.X/site-packages with
    addsitedir, then run lib/python3.X/sitecustomize.py (or, when there is
    none, import lib/python/silvercustomize.py, which the original's
    generated sitecustomize imported)."""
    version_dirs = _version_dirs(instance_dir)
    for d in reversed(version_dirs):
        sp = os.path.join(d, 'site-packages')
        if os.path.isdir(sp):
            _add_site_dir(sp)
    lib_python = os.path.join(instance_dir, 'lib', 'python')
    if os.path.isdir(lib_python):
        _add_site_dir(lib_python)
    for d in version_dirs:
        sc = os.path.join(d, 'sitecustomize.py')
        if os.path.isfile(sc):
            runpy.run_path(sc, run_name='sitecustomize')
            return
    if os.path.isfile(os.path.join(lib_python, 'silvercustomize.py')):
        __import__('silvercustomize')


def _load_python(path, name):
    """Run a .py runner as a module named main_py (the original's name)
    and return its WSGI object."""
    # Like `python path`: the runner's own directory comes first, so it
    # can import the modules beside it.
    run_dir = os.path.dirname(path)
    if run_dir not in sys.path:
        sys.path.insert(0, run_dir)
    spec = importlib.util.spec_from_file_location('main_py', path)
    if spec is None:
        raise ImportError('cannot load %s as a Python module' % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules['main_py'] = module
    spec.loader.exec_module(module)
    name = name or 'application'
    try:
        app = getattr(module, name)
    except AttributeError:
        raise LookupError('%s defines no %s (the runner must define the WSGI application %r)'
                          % (path, name, name)) from None
    if not callable(app):
        raise TypeError('%s in %s is not a WSGI application (not callable)' % (name, path))
    return app


def _load_paste(path, name):
    from paste.deploy import loadapp

    from silversupport.secret import get_secret
    global_conf = dict(os.environ)
    global_conf['SECRET'] = get_secret()
    return loadapp('config:' + path, name=name or None, global_conf=global_conf)


def load_app(environ=os.environ):
    """Load the application the TOPPCLOUD_* variables describe."""
    instance_dir = environ['TOPPCLOUD_INSTANCE_DIR']
    kind = environ.get('TOPPCLOUD_RUNNER_KIND', 'python')
    runner = environ['TOPPCLOUD_RUNNER']
    name = environ.get('TOPPCLOUD_RUNNER_NAME', '')
    path = os.path.join(instance_dir, runner)
    activate_path(instance_dir)
    if kind == 'python':
        return _load_python(path, name)
    if kind == 'paste':
        return _load_paste(path, name)
    raise ValueError('unknown runner kind %r (expected python or paste)' % kind)


class Bootstrap:
    """The WSGI application gunicorn serves: fixes up each request, then
    calls the application."""

    def __init__(self, app, collector, token):
        self.app = app
        self.collector = collector
        self._token = token

    def _is_internal(self, value):
        return bool(self._token) and hmac.compare_digest(value.encode('utf-8', 'replace'),
                                                         self._token.encode('utf-8'))

    def fix_environ(self, environ):
        # gunicorn takes a "SCRIPT_NAME:" request header as the script name;
        # a client must not choose it: start again from the raw path.
        if environ.pop('HTTP_SCRIPT_NAME', None) is not None:
            raw = environ.get('RAW_URI', '') or '/'
            raw = urllib.parse.urlsplit(raw).path if '://' in raw else raw.split('?', 1)[0]
            environ['SCRIPT_NAME'] = ''
            environ['PATH_INFO'] = urllib.parse.unquote_to_bytes(raw).decode('latin-1')

        internal = self._is_internal(environ.pop(INTERNAL_KEY, ''))
        environ['silverlining.internal'] = internal
        environ['silverlining.update'] = internal

        match = environ.pop(MATCH_PATH_KEY, '')
        if match:
            match = urllib.parse.unquote_to_bytes(match).decode('latin-1').rstrip('/')
        if match:
            path = environ.get('PATH_INFO', '')
            if path == match or path.startswith(match + '/'):
                environ['SCRIPT_NAME'] = environ.get('SCRIPT_NAME', '') + match
                environ['PATH_INFO'] = path[len(match):]
            else:
                # The router only sends requests under the mount; say so
                # rather than serve a wrong SCRIPT_NAME.
                print('toppcloud: request path %r is not under the mount path %r' % (path, match),
                      file=sys.__stderr__, flush=True)

        forwarded = environ.pop('HTTP_X_FORWARDED_FOR', '')
        if forwarded:
            environ['REMOTE_ADDR'] = forwarded.split(',')[0].strip()
        environ['SILVER_VERSION'] = os.environ.get('SILVER_VERSION', '')
        environ['SILVER_INSTANCE_NAME'] = os.environ.get('SILVER_INSTANCE_NAME', '')
        environ['SILVER_APP_NAME'] = os.environ.get('SILVER_APP_NAME', '')
        if 'CONFIG_WRITABLE_ROOT' in os.environ:
            environ['CONFIG_WRITABLE_ROOT'] = os.environ['CONFIG_WRITABLE_ROOT']
        environ['silverlining.apache_errors'] = environ.get('wsgi.errors')
        environ['wsgi.errors'] = self.collector

    def __call__(self, environ, start_response):
        collector = self.collector
        collector.start_request()
        self.fix_environ(environ)
        done = lambda: collector.finish_request(environ)  # noqa: E731
        try:
            app_iter = self.app(environ, start_response)
        except BaseException:
            traceback.print_exc(file=collector)
            drain(environ)
            done()
            raise
        wrapper = environ.get('wsgi.file_wrapper')
        if wrapper is not None and isinstance(wrapper, type) and isinstance(app_iter, wrapper):
            # Keep gunicorn's sendfile path; output while sending a file is
            # not worth losing it.
            drain(environ)
            done()
            return app_iter
        return _Finisher(app_iter, done, environ)


def _boot():
    token = os.environ.pop('TOPPCLOUD_INTERNAL_TOKEN', '')
    logs = os.environ.get('SILVER_LOGS', '')
    collector = ErrorCollector(os.path.join(logs, 'errors.log') if logs else os.devnull, sys.__stderr__)
    # Output while loading goes to the journal, where the deploy looks.
    try:
        app = load_app()
    except BaseException:
        runner = os.environ.get('TOPPCLOUD_RUNNER', '?')
        sys.__stderr__.write('toppcloud: the application (runner %s) failed to load:\n%s'
                             % (runner, traceback.format_exc()))
        sys.__stderr__.flush()
        sys.exit(APP_LOAD_ERROR)
    sys.stdout = sys.stderr = collector
    return Bootstrap(app, collector, token)


if os.environ.get('TOPPCLOUD_INSTANCE_DIR'):
    application = _boot()
