"""Unrolled: see inside recurrent neural networks, one time step at a time."""
