"""expect room (see DESIGN)."""
