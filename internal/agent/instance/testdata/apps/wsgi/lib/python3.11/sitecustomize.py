import os
os.environ['SITECUSTOMIZE_RAN'] = 'yes'
