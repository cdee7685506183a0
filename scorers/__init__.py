"""Features, models and tiering: pure functions of per-person state."""
