"""Settings a Django project needs on a toppcloud node, from the
environment the node gives the app. The project's settings.py ends with

    from toppcloud_settings import apply; apply(globals())
"""
import os


def apply(settings):
    env = os.environ
    if env.get("CONFIG_PG_DBNAME"):
        settings["DATABASES"] = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": env["CONFIG_PG_DBNAME"],
                "USER": env["CONFIG_PG_USER"],
                "PASSWORD": env["CONFIG_PG_PASSWORD"],
                "HOST": env["CONFIG_PG_HOST"],
                "PORT": env["CONFIG_PG_PORT"],
            }
        }
    if env.get("SILVER_VERSION", "").startswith("silverlining/"):
        settings["DEBUG"] = False
        settings["ALLOWED_HOSTS"] = ["*"]
        try:
            from silversupport.secret import get_secret
            settings["SECRET_KEY"] = get_secret()
        except Exception:
            pass
    if "notes" not in settings["INSTALLED_APPS"]:
        settings["INSTALLED_APPS"] = list(settings["INSTALLED_APPS"]) + ["notes"]
    if env.get("CONFIG_FILES"):
        settings["MEDIA_ROOT"] = env["CONFIG_FILES"]
