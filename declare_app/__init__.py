"""declare_app package (under construction)."""
