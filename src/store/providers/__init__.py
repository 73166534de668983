"""providers slice."""
