"""Base utilities that import nothing of dcu: atomic writes and locks."""
