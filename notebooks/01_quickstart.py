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
# # NA64 invisible mode: quick start
#
# The A' → invisible search looks for 100 GeV electrons that deposit only part of their energy in the
# ECAL and *nothing* in the VETO and HCAL: the missing energy E_miss = E_0 − E_ECAL is carried away by
# the A' (→ χχ̄). This notebook goes once through the core of the analysis on a small simulated sample:
#
# 1. the campaign conditions in `datasets.json` (here `prd2018`, the three 2016 intensity runs of
#    PRD 97 072002),
# 2. simulation of the runs at skim level (~10⁶ events, a few seconds),
# 3. the invisible-mode processor run interactively (coffea, iterative executor),
# 4. the cut flow and the (E_ECAL, E_HCAL) plane with side bands A and C and the signal box,
# 5. what an A' signal looks like, on a signal-injected *simulated* sample with the box explicitly opened.
#
# **Blinding.** Data samples are blinded by default: events in the signal box B = {E_ECAL < 50 GeV,
# E_HCAL < 1 GeV} are dropped right after the event count, before any cut-flow row, histogram or region
# count is filled. Only section 5 opens a box, on simulation with an injected signal, and says so.
#
# Outputs go to a temporary folder (or `$NA64ANA_NB_OUT`), never into the repository.

# %%
# %matplotlib inline

from IPython.display import Markdown, display

import na64ana as na
from na64ana import background, published
from na64ana.bookkeeping.locations import scratch_dir
from na64ana.physics.yields import signal_yield_per_eot
from na64ana.presentation import plots
from na64ana.presentation.report import table
from na64ana.processing import outputs
from na64ana.simulation import simulate_campaign

REPO = na.repo_root()
OUT = scratch_dir("quickstart")
DATASETS = REPO / "datasets.json"
CAMPAIGN = "prd2018"
SEED = 2016
print("repository:", REPO)
print("outputs:   ", OUT)

# %% [markdown]
# ## 1. The campaign
#
# `datasets.json` holds, per run, the published conditions (EOT, beam intensity, HCAL0 presence, signal
# efficiency) with their sources, and the list of files (empty in the repository; the simulator fills
# it in its own copy).

# %%
ds = na.load_datasets(DATASETS)
camp = ds.campaign(CAMPAIGN)
print(camp.description)
display(Markdown(table(
    ["run", "year", "EOT", "intensity [e⁻/spill]", "HCAL0", "signal efficiency"],
    [[name, run.year, run.eot, f"{run.intensity_e_per_spill[0]:.2g}–{run.intensity_e_per_spill[1]:.2g}",
      run.hcal0, run.efficiency] for name, run in camp.runs.items()])))

# %% [markdown]
# ## 2. Simulate the runs
#
# `simulate_campaign` writes one ROOT file per run (the NA64 branch contract) and a filled copy of
# `datasets.json` next to them. The *skim* level keeps the events that can matter for the invisible
# selection (the bulk of full-energy showers is thinned away), so the full 2016 exposure of the three
# runs is only ~10⁶ events.

# %%
sim_report: list[dict] = []
data_ds = simulate_campaign(DATASETS, out_dir=OUT / "data", campaign=CAMPAIGN, seed=SEED, report=sim_report)
display(Markdown(table(["run", "events written", "EOT", "seconds"],
                       [[r["run"], r["events"], r["eot"], r["seconds"]] for r in sim_report])))

# %% [markdown]
# ## 3. Run the processor interactively
#
# `plan` turns the datasets file into jobs (one per run and sample) with the selection resolved for
# each run (e.g. the HCAL0 cut only where HCAL0 existed, the campaign's momentum window). `run` checks
# every input file and runs the coffea processor; `executor="iterative"` runs in this process.

# %%
jobs = na.plan(data_ds, campaign=CAMPAIGN)
display(Markdown(table(["key", "kind", "events", "EOT", "selection hash"],
                       [[j.key, j.kind, j.nevents, j.eot, j.selection.hash[:12]] for j in jobs])))
result = na.process(jobs, "invisible", executor="iterative")
print({k: result.metrics[k] for k in ("events", "chunks", "wall_time_s", "events_per_s")})
print("blinded dataset keys:", sorted(result.output["blinded"]))

# %% [markdown]
# The raw processor output is a dictionary of accumulators (cut-flow counts, region counts and
# `hist.Hist` objects). `write_run` turns it into the documented run-output folder (cut-flow JSON and
# markdown, one histogram per file (uhi JSON), region counts, metrics, provenance) and returns the cut-flow
# records.

# %%
print(sorted(result.output))
run_dir = OUT / "run"
records = outputs.write_run(run_dir, result, processor="invisible", unblind=False, datasets_file=data_ds)
print(sorted(p.name for p in run_dir.iterdir()))

# %% [markdown]
# ## 4. Cut flow
#
# Criteria (i)–(iv) of the paper (track momentum, SRD tag, shower shape, straw and VETO activity), then
# pile-up removal and the HCAL zero-energy requirement. The VETO row removes ~99.6% of the skimmed
# events (dimuons and hadronic interactions). The signal-box row is hidden: the sample is blinded.

# %%
display(Markdown(outputs.cutflow_markdown(records["III"])))

# %%
fig = plots.plot_cutflow(records)
plots.save(fig, OUT / "plots", "cutflow")
display(fig)

# %% [markdown]
# ## 5. The (E_ECAL, E_HCAL) plane
#
# After the loose SRD tag the plane is dominated by hadronic events along E_ECAL + E_HCAL ≈ E_0 (class
# II) and dimuons (class I, E_HCAL of a few GeV); after all cuts but the HCAL veto only side band A
# (E_HCAL > 1 GeV) and side band C (E_ECAL > 50 GeV, E_HCAL < 1 GeV) remain populated. The signal box
# (red) is hatched: its content was never filled.

# %%
box = na.SignalBox(ecal_max=background.box_edge(run_dir, "III"))
panels = [(title, outputs.load_hist(run_dir, name)) for name, title in
          (("plane_loose", "loose SRD tag"), ("plane_i_iv", "after (i)-(iv)"), ("plane_final", "all cuts"))]
eot = sum(j.eot for j in jobs)
fig = plots.plot_planes(panels, box=box, blinded=True, rlabel=f"{eot:.2g} EOT")
plots.save(fig, OUT / "plots", "planes")
display(fig)

# %% [markdown]
# Region counts per run (what the background estimate starts from); the signal box is `None` while
# blinded.

# %%
regions = outputs.load_regions(run_dir)
names = list(next(iter(regions.values())))
display(Markdown(table(["run", *names], [[run, *(str(r[n]) for n in names)] for run, r in regions.items()])))

# %% [markdown]
# ## 6. What a signal looks like (simulation, box explicitly opened)
#
# We simulate run I again with an A' of m_A' = 16.7 MeV injected at ε = 10⁻³ — far above the published
# limits, so that the signal is visible. The expected number of A' with E_A' > E_miss threshold is
# EOT × n_A'(m, ε) from `na64ana.physics.yields`; the run's signal efficiency reduces it further.
#
# **Unblinding:** this is a simulated, signal-injected sample, so the cell below passes
# `unblind=True` on purpose to show the box. The analysis never does this on data.

# %%
m_inj, eps_inj = 0.0167, 1e-3
run_i = camp.runs["I"]
n_aprime = run_i.eot * signal_yield_per_eot(m_inj, eps_inj, e0=camp.beam_energy_GeV,
                                             emiss_min=camp.emiss_min_GeV)
print(f"expected A' (E_A' > {camp.emiss_min_GeV:g} GeV): {n_aprime:.1f}; "
      f"x published efficiency {run_i.efficiency}: {n_aprime * run_i.efficiency:.1f} in the box")

inj_ds = simulate_campaign(DATASETS, out_dir=OUT / "injected", campaign=CAMPAIGN, runs=["I"], seed=SEED + 1,
                           signal_mass=m_inj, signal_eps=eps_inj)
inj_jobs = na.plan(inj_ds, campaign=CAMPAIGN, runs=["I"])
inj_result = na.process(inj_jobs, "invisible", unblind=True)  # simulation with injected signal: unblinded
inj_dir = OUT / "run_injected"
inj_records = outputs.write_run(inj_dir, inj_result, processor="invisible", unblind=True,
                                datasets_file=inj_ds)
print("regions (unblinded, simulation):", outputs.load_regions(inj_dir)["I"])
print("published background expectation for run I:",
      published.get("background.prd2018.upstream_per_run")[0], "(upstream)")

# %% [markdown]
# The box is a thin strip in the plane (E_HCAL < 1 GeV), so the E_ECAL distribution after every cut
# except the box itself (the N−1 distribution of the box cut) shows the signal best: A' events below
# the box edge, the upstream background falling steeply from side band C towards it.

# %%
h_box = outputs.load_hist(inj_dir, "nminus1_signal_box_ecal_e")
fig = plots.plot_nminus1(h_box, "ecal_e", window=(None, box.ecal_max), xlabel=r"$E_{\mathrm{ECAL}}$ [GeV]",
                         llabel="Simulation, signal injected")
plots.save(fig, OUT / "plots", "ecal_injected")
display(fig)

# %% [markdown]
# The injected A' events sit inside the box at E_ECAL < 50 GeV with no HCAL energy — exactly the
# signature that the side-band background estimate (notebook 02) and the limit setting (notebook 03)
# are about.
