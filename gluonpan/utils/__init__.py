"""gluonpan.utils"""
