"""pytest plugin (entry point ``pytest11``): ``pytest --benchmark`` runs vqbench's benchmarks."""
