"""A library module deployed with the app (lib/python is on sys.path)."""


def text():
    return "Hello from toppcloud"
