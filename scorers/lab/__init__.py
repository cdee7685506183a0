"""The offline lab: the simulated city, training data, training, threshold tuning, evaluation and its report.

Nothing here runs in a worker; the worker loads what the lab produced (a model artifact, a tier policy).
"""
