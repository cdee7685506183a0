"""The contract's records, their validation and normalisation, and dead-letter records."""
