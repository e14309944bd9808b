"""A plain module beside ``uses_helper.py``: the levels it builds FSQ with."""

LEVELS = (5, 5, 5)
