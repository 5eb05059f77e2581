"""Panoptic datasets, id conventions, transforms and batching."""
from .categories import *  # noqa: F401,F403
