"""symbolic room (see DESIGN)."""
