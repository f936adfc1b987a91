"""Statistical model and limits."""
