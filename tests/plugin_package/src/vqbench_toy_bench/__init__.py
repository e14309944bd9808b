"""A tiny vqbench plugin: the ``toy-rings`` dataset and the ``toy-distortion`` benchmark engine."""
