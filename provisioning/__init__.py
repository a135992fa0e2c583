"""provisioning package (under construction)."""
