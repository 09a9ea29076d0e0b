import os
import sys

import helper_mod

print('migrating with', ' '.join(sys.argv[1:]))
print('helper', helper_mod.VALUE)
print('instance', os.environ['SILVER_INSTANCE_NAME'])
print('token', os.environ.get('TOPPCLOUD_INTERNAL_TOKEN', 'absent'))
print('name', __name__)
sys.stdout.flush()
if '--fail' in sys.argv:
    sys.stderr.write('migration failed\n')
    sys.exit(3)
