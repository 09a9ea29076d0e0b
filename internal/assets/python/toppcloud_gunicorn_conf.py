# gunicorn configuration for toppcloud instances. The settings are on the
# command line of the instance's systemd unit; this file exists so that
# gunicorn does not read a gunicorn.conf.py from the application directory
# (its default), which could change the socket or the user.
