"""The search (train_search.py): the supernet, its programs, the architect (the alpha
update), the search methods (methods/: DARTS, DAAS, DADARTS, PC-DARTS), the signs of
collapse and DARTS-ES, what an epoch reports, the checkpoint (state.py), the flags and the
epoch loop."""
