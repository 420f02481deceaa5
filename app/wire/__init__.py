"""The wire: how a trace travels (JSON bodies and frames, binary records) and how its records are read back."""
