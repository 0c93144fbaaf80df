"""families room (see DESIGN)."""
