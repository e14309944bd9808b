"""Commands composed at the face: they run a suite (``vqbench.suite``) and then report on its rows
(``vqbench.reports``): ``vqbench nightly`` and ``vqbench compare --candidate``. The reports
themselves read stored rows only."""
