"""Where the application runs."""

import os

__all__ = ['is_production']


def is_production():
    """True when running on a toppcloud node (or under the original Silver
    Lining), False in development.

    The original tested for its server library directory; toppcloud sets
    SILVER_VERSION, which starts with "silverlining/" in production, for
    every application process."""
    return os.environ.get('SILVER_VERSION', '').startswith('silverlining/')
