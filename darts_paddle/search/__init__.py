"""The search (train_search.py): the supernet, its programs, the architect (the alpha
update), the search methods (DARTS, DAAS, DADARTS) and the epoch loop."""
