"""The wire: how a trace travels (JSON bodies and frames, binary records), one layout per family (token.py,
translation.py, series.py) on the helpers they share (frames.py), and how its records are read back (decode.py)."""
