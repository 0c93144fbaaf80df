"""testing room (see DESIGN)."""
