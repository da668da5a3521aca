"""Pure SLO analysis: the SLO spec, burn-rate arithmetic, the canary judge and Prometheus rule generation.

Nothing here performs I/O; the metric source is a ``ports.MetricProvider`` handed in by the caller.
"""
