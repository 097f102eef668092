"""Serving: the model over the open inference protocol (v2), with Prometheus metrics and input logging."""
