"""fisher room (see DESIGN)."""
