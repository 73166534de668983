"""hub slice."""
