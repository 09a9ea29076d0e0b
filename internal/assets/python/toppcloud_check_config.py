"""Check an application's configuration the way the original's
update-check-config.py did.

    python3 toppcloud_check_config.py MODULE:FUNCTION CONFIG_DIR

The agent runs this as the application's user, in the instance directory,
with the instance's environment, before a new instance starts, when
app.ini names a config.checker. The application's libraries are put on
sys.path as for the WSGI application (without loading the application),
then FUNCTION (a dotted attribute path) of MODULE is called with the
configuration directory. An exception refuses the configuration: its
traceback is the message the user sees, and the exit status is 1.
"""

import importlib
import os
import sys


def main(argv):
    if len(argv) != 3 or ':' not in argv[1]:
        sys.stderr.write('usage: toppcloud_check_config.py MODULE:FUNCTION CONFIG_DIR\n')
        return 2
    module, _, function = argv[1].partition(':')
    # Without TOPPCLOUD_INSTANCE_DIR the bootstrap does not load the
    # application when imported: the checker runs on its own.
    instance_dir = os.environ.pop('TOPPCLOUD_INSTANCE_DIR', '') or os.getcwd()
    import toppcloud_wsgi
    toppcloud_wsgi.activate_path(instance_dir)
    os.environ['TOPPCLOUD_INSTANCE_DIR'] = instance_dir
    # A checker module may also live at the top of the application.
    sys.path.append(instance_dir)
    obj = importlib.import_module(module)
    for part in function.split('.'):
        obj = getattr(obj, part)
    obj(argv[2])
    print('configuration %s accepted by %s' % (argv[2], argv[1]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
