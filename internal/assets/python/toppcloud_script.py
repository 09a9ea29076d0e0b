"""Run an application script the way the original's call-script.py did.

    python3 toppcloud_script.py SCRIPT [ARGS...]

SCRIPT is relative to $TOPPCLOUD_INSTANCE_DIR (or absolute). The agent runs
this as the application's user, in the instance directory, with the
instance's environment, for `script:` entries of update_fetch. The
application's libraries are put on sys.path as for the WSGI application,
and the script runs as __main__ with sys.argv = [SCRIPT, ARGS...]. Its exit
status is the command's.
"""

import os
import runpy
import sys

import toppcloud_wsgi


def main(argv):
    if len(argv) < 2:
        sys.stderr.write('usage: toppcloud_script.py SCRIPT [ARGS...]\n')
        return 2
    instance_dir = os.environ.get('TOPPCLOUD_INSTANCE_DIR')
    if not instance_dir:
        sys.stderr.write('toppcloud_script.py: TOPPCLOUD_INSTANCE_DIR is not set\n')
        return 2
    # Scripts are not requests; nothing proves anything with the token.
    os.environ.pop('TOPPCLOUD_INTERNAL_TOKEN', None)
    script = os.path.join(instance_dir, argv[1])
    if not os.path.isfile(script):
        sys.stderr.write('toppcloud_script.py: no script %s\n' % script)
        return 2
    toppcloud_wsgi.activate_path(instance_dir)
    # Like `python SCRIPT`: the script's directory comes first.
    sys.path.insert(0, os.path.dirname(script))
    sys.argv = [script] + argv[2:]
    runpy.run_path(script, run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
