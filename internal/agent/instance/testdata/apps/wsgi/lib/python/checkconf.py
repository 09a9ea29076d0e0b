# A config.checker for the runner's tests.
import os

import helper_mod


def check(config_dir):
    print('checking', os.path.basename(config_dir), 'with', helper_mod.VALUE)
    if os.path.exists(os.path.join(config_dir, 'bad')):
        raise ValueError('the configuration says bad')
