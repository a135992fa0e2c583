"""certs package (under construction)."""
