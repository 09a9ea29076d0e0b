"""Compatibility with the original Silver Lining's ``silversupport`` package.

Applications written for the original import a few helpers from it; toppcloud
provides these so that they run unchanged:

- ``silversupport.secret``: ``get_secret()``, ``get_key(name)``
- ``silversupport.env``: ``is_production()``

Everything else of the original package (appconfig, appdata, service
modules, shell, requests, transfer methods) belonged to the server's own
tooling and is not provided: importing it fails with ImportError.
"""
