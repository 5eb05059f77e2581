"""gluonpan.nn"""
