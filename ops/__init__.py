"""The operations center: metrics, the live console, explanations and the daily bulletin."""
