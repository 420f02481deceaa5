"""The recurrences of 2023–2025 (issue 28): minGRU and minLSTM (mingru.py) and Mamba's selective state-space layer
(s6.py), each a linear recurrence h_t = a_t ⊙ h_{t−1} + b_t computed three ways (scan.py: the loop, a parallel
scan, the log-space form), with exact traces. layer.py makes them cells of the token family (app/engine/layers.py
runs them).
"""
