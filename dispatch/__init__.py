"""Routing, cooldown, escalation and channels for warnings."""
