"""One module per CLI command; see medrep.cli."""
