"""report room (see DESIGN)."""
