"""audit package (under construction)."""
