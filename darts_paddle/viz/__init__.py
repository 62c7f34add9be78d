"""Pictures: cell graphs, and how a search evolved (GIF, alpha and beta plots)."""
