def make_app(global_conf, greeting=''):
    secret = global_conf.get('SECRET', '')
    instance = global_conf.get('SILVER_INSTANCE_NAME', '')

    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('%s|secret=%s|instance=%s' % (greeting, secret, instance)).encode()]
    return app
