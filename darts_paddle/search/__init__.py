"""The search (train_search.py): the supernet, its programs, the architect (the alpha
update), the search methods (DARTS, DAAS, DADARTS, PC-DARTS), the signs of collapse and
DARTS-ES, and the epoch loop."""
