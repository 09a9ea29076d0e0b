VALUE = 'from lib/python'
