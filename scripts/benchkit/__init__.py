"""The machinery of ``scripts/bench.py``: options and their parsing (:mod:`.cli`, :mod:`.overrides`), the record
every subcommand writes (:mod:`.record`), timing (:mod:`.timing`), the model-only baseline (:mod:`.baseline`),
footage sets (:mod:`.footage`) and the measurement matrix (:mod:`.matrix`); one module per subcommand in
:mod:`.commands`. Nothing here imports torch before a subcommand runs, so ``--help`` answers at once."""
