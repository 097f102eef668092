"""Monitoring: the reference built at training, and the drift and outlier checks against it."""
