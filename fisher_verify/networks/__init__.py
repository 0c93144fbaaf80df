"""networks room (see DESIGN)."""
