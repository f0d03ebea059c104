"""What the `workshop` commands print: one module per command (rich, except progress)."""
