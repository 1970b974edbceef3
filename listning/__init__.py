"""Listning: the command-line front door. The work lives in the folders it dispatches to."""
