"""sessions slice."""
