"""Experiments that run several searches and gather what they found into one table:
nb201_table.py, the NAS-Bench-201 results table of the READMEs."""
