# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Running on a dask cluster
#
# A full campaign at trigger level is hundreds of millions of events: the processor then runs on a
# cluster. `na64ana.processing.execute.run` drives coffea's `Runner` with one of three executors that give
# **identical** outputs: `iterative` (this process), `futures` (local processes) and `dask`
# (a `dask.distributed` cluster). Here we
#
# 1. start a `LocalCluster` of two worker *processes* (one thread each, like batch slots),
# 2. run the same blinded campaign through it and through the iterative executor,
# 3. check that cut flows, region counts and every histogram are identical,
# 4. see how to point at an existing scheduler or a batch system (dask-jobqueue).
#
# The processor and the selections are installed modules (`na64ana.processors`, `na64ana.selections`), so
# the workers import them like any other package: nothing is shipped by pickling notebook code.

# %%
from collections import Counter

import numpy as np
from distributed import Client, LocalCluster, get_task_stream

import na64ana as na
from na64ana.bookkeeping.locations import scratch_dir
from na64ana.processing import outputs
from na64ana.simulation import simulate_campaign

REPO = na.repo_root()
OUT = scratch_dir("dask")
CAMPAIGN = "prd2018"
CHUNKSIZE = 100_000  # small chunks: ~10 tasks, so both workers take part
print("outputs:", OUT)

# %% [markdown]
# ## The campaign and the iterative reference

# %%
data_ds = simulate_campaign(REPO / "datasets.json", out_dir=OUT / "data", campaign=CAMPAIGN, seed=2016)
jobs = na.plan(data_ds, campaign=CAMPAIGN)
print({j.key: j.nevents for j in jobs})
ref = na.process(jobs, "invisible", executor="iterative", chunksize=CHUNKSIZE)
ref_records = outputs.write_run(OUT / "run_iterative", ref, processor="invisible", unblind=False,
                                datasets_file=data_ds)
print({k: ref.metrics[k] for k in ("executor", "events", "chunks", "wall_time_s")})

# %% [markdown]
# ## A local cluster of processes
#
# `processes=True` gives each worker its own Python process (no GIL sharing), `threads_per_worker=1`
# mimics one batch slot per worker. `dashboard_address=":0"` puts the dashboard on a free port (8787 may
# be taken by another cluster); open `cluster.dashboard_link` to watch the tasks (needs bokeh).

# %%
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
client = Client(cluster)
client.wait_for_workers(2)
print("scheduler:", cluster.scheduler_address, "| dashboard:", cluster.dashboard_link)
print("workers:", sorted(client.scheduler_info()["workers"]))

# %% [markdown]
# `execute.run(..., scheduler=address)` uses the dask executor on that scheduler (it only opens its own
# client; the cluster stays ours). The task stream shows which worker processed which chunk.

# %%
with get_task_stream(client) as stream:
    dask_result = na.process(jobs, "invisible", scheduler=cluster.scheduler_address, chunksize=CHUNKSIZE)
dask_records = outputs.write_run(OUT / "run_dask", dask_result, processor="invisible", unblind=False,
                                 datasets_file=data_ds)
print({k: dask_result.metrics[k] for k in ("executor", "events", "chunks", "wall_time_s")})
print("tasks per worker:", dict(Counter(t["worker"] for t in stream.data)))

# %% [markdown]
# ## Identical results
#
# Same cut-flow records (blinded in both), same region counts, and bin-by-bin identical histograms
# (the category order of the `run` axis follows the merge order, so runs are compared by name).

# %%
assert dask_records == ref_records
assert outputs.load_regions(OUT / "run_dask") == outputs.load_regions(OUT / "run_iterative")
names = outputs.list_hists(OUT / "run_iterative")
assert names == outputs.list_hists(OUT / "run_dask")
for name in names:
    a, b = outputs.load_hist(OUT / "run_iterative", name), outputs.load_hist(OUT / "run_dask", name)
    assert sorted(a.axes["run"]) == sorted(b.axes["run"]), name
    for run in a.axes["run"]:
        np.testing.assert_array_equal(a[{"run": run}].values(flow=True), b[{"run": run}].values(flow=True))
        np.testing.assert_array_equal(a[{"run": run}].variances(flow=True),
                                      b[{"run": run}].variances(flow=True))
print(f"identical: {len(ref_records)} cut flows, region counts and {len(names)} histograms")
print(outputs.cutflow_markdown(dask_records["II"]))

# %%
client.close()
cluster.close()

# %% [markdown]
# `execute.run(jobs, "invisible", executor="dask", workers=N)` does the same with a `LocalCluster` it
# starts and stops itself; on the command line: `na64ana run --executor dask --workers N`.
#
# ## An existing scheduler
#
# On a cluster the scheduler and the workers are started separately, e.g. on interactive nodes with a
# shared file system:
#
# ```bash
# dask scheduler --scheduler-file ~/na64-scheduler.json            # once
# dask worker --scheduler-file ~/na64-scheduler.json --nworkers 8 --nthreads 1 --memory-limit 4GB
# ```
#
# and the analysis only needs the address:
#
# ```python
# result = na.process(jobs, "invisible", scheduler="tcp://scheduler-host:8786")
# ```
#
# ```bash
# na64ana run --datasets sim/datasets.json --out out/run --scheduler tcp://scheduler-host:8786
# ```
#
# The workers must run the same environment (`pip install -e .` of the same na64ana commit: the
# selection hash in every cut flow shows if they did not) and must be able to read the input files at
# the paths listed in `datasets.json`.
#
# ## A batch system: dask-jobqueue
#
# `pip install "na64ana[jobqueue]"` adds dask-jobqueue; it submits the workers as batch jobs (HTCondor at
# CERN, SLURM elsewhere) and gives a scheduler address like any other cluster:
#
# ```python
# from dask_jobqueue import HTCondorCluster   # or SLURMCluster, PBSCluster, ...
#
# cluster = HTCondorCluster(cores=1, processes=1, memory="4GB", disk="2GB",
#                           job_extra_directives={"+JobFlavour": '"longlunch"'})
# cluster.scale(jobs=50)          # or cluster.adapt(minimum_jobs=0, maximum_jobs=200)
# result = na.process(jobs, "invisible", scheduler=cluster.scheduler_address, chunksize=500_000)
# cluster.close()
# ```
#
# Blinding does not depend on where the processor runs: the box is removed inside the processor on the
# workers, before anything is filled, unless `unblind=True` is passed explicitly.
