"""Training-time tools that act on torch modules before export (see DESIGN.md)."""
