"""commands room (see DESIGN)."""
