"""Models shipped inside the package (data only)."""
