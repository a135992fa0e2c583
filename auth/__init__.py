"""auth package (under construction)."""
