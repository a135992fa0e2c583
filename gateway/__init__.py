"""gateway package (under construction)."""
