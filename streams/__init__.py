"""Faust app and agents: signals in, per-person state, triggers out."""
