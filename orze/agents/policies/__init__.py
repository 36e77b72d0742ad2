"""Policy implementations, one module each."""
