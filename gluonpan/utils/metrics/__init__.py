"""gluonpan.utils.metrics"""
