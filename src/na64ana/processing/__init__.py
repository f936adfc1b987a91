"""Stage 1, events -> run outputs: plan the jobs, check the inputs, run a coffea processor over them with
one of the executors (chunk cache as coffea checkpointer) and write the run outputs (cut flows, regions,
histograms, metrics).

Modules, in the order a run uses them: :mod:`.execute` (plan, executors, run), :mod:`.inputs` (preflight
checks of every input file), :mod:`.cache` (content-keyed chunk cache), :mod:`.outputs` (the run output
folder and its readers).
"""
