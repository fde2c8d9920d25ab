"""Base utilities that import nothing of dcu: atomic writes and locks, the data folder, and the
guards every door applies (names shown escaped, special files refused, signals unwound)."""
