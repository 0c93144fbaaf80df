"""proofs room (see DESIGN)."""
