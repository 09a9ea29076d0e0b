"""The application's secret and API keys.

The secret is a random-looking string of the application's own, derived
on the node from the node's secret and the application's name, kept in a
file only this application (and root) can read; it is never put in the
environment. Another application has another secret, so it cannot forge
what this one signs with its own. Its path is $TOPPCLOUD_SECRET_FILE (on a
node, /var/lib/toppcloud/apps/APP/secret).
"""

import configparser
import os

__all__ = ['get_secret', 'get_key']

DEFAULT_SECRET_FILE = '/var/lib/toppcloud/secret'
DEFAULT_KEYS_FILE = '/var/lib/toppcloud/keys.ini'


def _secret_file():
    return os.environ.get('TOPPCLOUD_SECRET_FILE') or DEFAULT_SECRET_FILE


def get_secret():
    """Return the application's secret (a str, without surrounding whitespace).

    Raises OSError if the secret file cannot be read."""
    with open(_secret_file(), 'rb') as fp:
        return fp.read().strip().decode('utf-8')


def load_keys():
    """Read [keys] (name = value) and [keys:NAME] (a dict) sections from
    $TOPPCLOUD_KEYS_FILE, as the original did from its keys.ini; an absent
    file gives no keys."""
    parser = configparser.RawConfigParser()
    parser.read([os.environ.get('TOPPCLOUD_KEYS_FILE') or DEFAULT_KEYS_FILE])
    keys = {}
    if parser.has_section('keys'):
        for option in parser.options('keys'):
            keys[option] = parser.get('keys', option)
    for section in parser.sections():
        if section.startswith('keys:'):
            keys[section[len('keys:'):]] = dict(parser.items(section))
    return keys


def get_key(name):
    """Return the API key called name, or None."""
    return load_keys().get(name)
