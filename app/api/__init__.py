"""The web layer: requests become engine calls, traces become bodies and frames."""
