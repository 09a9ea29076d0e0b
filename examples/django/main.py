"""The WSGI entry point toppcloud runs (runner = main.py): the Django
project's application, with its settings module."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
