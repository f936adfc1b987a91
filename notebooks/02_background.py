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
# # Background estimate from the side bands
#
# The dominant background in the signal box comes from electron interactions *upstream* of the ECAL
# (in the beam-line material): the electron loses energy before the ECAL and the products escape. No
# simulation of it can be trusted, so NA64 measures it (PRD 97 072002, Sec. VIII):
#
# * **side band C** (E_HCAL < 1 GeV, E_ECAL between the box edge and the 80 GeV trigger edge) holds
#   events of the same kind just above the box;
# * its E_ECAL spectrum is fitted with dN/dE = exp(p₁ + p₂ E) (binned Poisson likelihood) and the fit is
#   **extrapolated** into the box, 0 < E_ECAL < 50 GeV;
# * the exponential shape is **validated** in an independent sample of the same upstream mechanism
#   (E_HCAL > 10 GeV, E_ECAL from the box edge to 80 GeV): its slope must agree with side band C's, and
#   each run gets a verdict (ok / warn / fail) recorded in the background table;
# * the other components (dimuons, decays in flight, punch-through, ...) come from the published table
#   scaled to the run's exposure, and everything is summed into a per-run **background table**.
#
# All of it uses the blinded run output: the box content is never needed.

# %%
# %matplotlib inline

from IPython.display import Markdown, display

import na64ana as na
from na64ana import background, published
from na64ana.bookkeeping.locations import scratch_dir
from na64ana.presentation import plots
from na64ana.presentation.report import table
from na64ana.processing import outputs
from na64ana.simulation import simulate_campaign

REPO = na.repo_root()
OUT = scratch_dir("background")
CAMPAIGN = "prd2018"
SEED = 2016
print("outputs:", OUT)

# %% [markdown]
# ## The blinded run output
#
# The 2016 campaign (three intensity runs, 4.3·10¹⁰ EOT) simulated at skim level and processed blinded,
# as in the quick-start notebook.

# %%
data_ds = simulate_campaign(REPO / "datasets.json", out_dir=OUT / "data", campaign=CAMPAIGN, seed=SEED)
jobs = na.plan(data_ds, campaign=CAMPAIGN)
run_dir = OUT / "run"
records = outputs.write_run(run_dir, na.process(jobs, "invisible"), processor="invisible", unblind=False,
                            datasets_file=data_ds)
print({key: rec["blinded"] for key, rec in records.items()})
print("histograms:", outputs.list_hists(run_dir))

# %% [markdown]
# ## Side-band-C fit (run III)
#
# The fit starts at the box edge the run stage actually used (`background.box_edge`, the published
# 50 GeV unless a run overrides it) and ends at the trigger edge. `fit_sideband` returns the parameters,
# their covariance, χ² and pulls.

# %%
sideband = outputs.load_hist(run_dir, "ecal_sideband_c")
edge = background.box_edge(run_dir, "III")
fit_range = (edge, float(published.get("selection.sideband_c_fit_max_GeV")))
h_c = sideband[{"run": "III"}]
fit = background.fit_sideband(h_c, fit_range=fit_range)
d = fit.as_dict()
print(f"fit range {fit_range} GeV, {int(fit.counts.sum())} events; converged: {fit.converged}")
print(f"p2 = {d['p2']:.4f} +- {d['p2_unc']:.4f} /GeV, chi2/ndf = {fit.chi2:.1f}/{fit.ndf}")

# %% [markdown]
# The slope is the quantity PRD 97 072002 quotes per run; the simulation is tuned to reproduce it, so
# the three runs should agree with the published values within a few standard deviations.

# %%
pub_slope = published.get("background.prd2018.sideband_slope_per_GeV")
pub_slope_unc = published.entry("background.prd2018.sideband_slope_per_GeV")["unc"]
fits = {run: background.fit_sideband(sideband[{"run": run}],
                                     fit_range=(background.box_edge(run_dir, run), fit_range[1]))
        for run in ("I", "II", "III")}
rows = []
for (run, f), p, u in zip(fits.items(), pub_slope, pub_slope_unc, strict=True):
    fd = f.as_dict()
    rows.append([run, int(f.counts.sum()), f"{fd['p2']:.3f} ± {fd['p2_unc']:.3f}", f"{p} ± {u}",
                 f"{f.chi2:.1f}/{f.ndf}"])
display(Markdown(table(["run", "side-band C events", "p₂ [1/GeV] (this)", "p₂ published", "χ²/ndf"], rows)))
print("source:", published.source("background.prd2018.sideband_slope_per_GeV"))

# %% [markdown]
# ## Extrapolation into the box
#
# `FitResult.extrapolate` integrates the fitted density over the box and propagates the fit covariance
# (sampling the parameters). `estimate_upstream` adds the systematic uncertainties: alternative shapes
# (exponential of a quadratic, power law) and a shifted fit range — the largest deviation of each, in
# quadrature. (The full background table below also varies the HCAL zero threshold.)

# %%
value, stat = fit.extrapolate(0.0, edge)
print(f"run III upstream in the box (fit only): {value:.4f} +- {stat:.4f} (stat)")
up = background.estimate_upstream(h_c, box=(0.0, edge), fit_range=fit_range)
print(f"with systematics: {up.value:.4f} +- {up.stat:.4f} (stat) +- {up.syst:.4f} (syst)")
print("systematic parts:", {k: round(v, 5) for k, v in up.syst_parts.items()})
print("published (S001, run III):", published.get("background.prd2018.upstream_per_run")[2],
      "+-", published.entry("background.prd2018.upstream_per_run")["unc"][2])

# %%
box = na.SignalBox(ecal_max=edge)
fig = plots.plot_sideband_fit(h_c, d, prediction=up.as_dict(), box=box, run="III")
plots.save(fig, OUT / "plots", "sideband_c_III")
display(fig)

# %% [markdown]
# ## Validation region
#
# Events with E_HCAL > 10 GeV come from the same upstream interactions as side band C, whose hadrons
# now reach the HCAL (the simulation fills the region with that mechanism, with the side-band slope),
# plus hadron electroproduction in the target: a soft, nearly flat E_ECAL spectrum. `validate_shape`
# fits an exponential plus a flat floor from the box edge to 80 GeV (`background.validation_fit_range`;
# below the edge the flat part dominates and would test the contamination, not the extrapolated shape).
# The same mechanism in an independent sample must then have the **same slope** as side band C.
#
# It reports χ²/ndf and the p-value (Poisson deviance on bins merged to ≥ 5 expected events), the
# largest pull, the slope difference to side band C in standard deviations, and a **verdict**: `fail`
# if p < 0.01 or |Δp₂| > 3σ, `warn` if p < 0.05 or |Δp₂| > 2σ, else `ok`.

# %%
validation = outputs.load_hist(run_dir, "ecal_validation")
rows = []
for run, f in fits.items():
    v = background.validate_shape(validation[{"run": run}], sideband_fit=f, run=run)
    rows.append([run, int(sum(v["fit"]["counts"])), v["chi2_ndf"], v["p_value"], v["max_abs_pull"],
                 v["slope_diff_sigma"], f"**{v['flag']}**"])
    print(v["message"])
display(Markdown(table(["run", "events", "χ²/ndf", "p-value", "max |pull|", "Δp₂ / σ", "verdict"], rows)))
print("published validation region:", published.get("selection.validation_ecal_range_GeV"),
      "GeV in E_ECAL, E_HCAL >", published.get("selection.validation_hcal_min_GeV"), "GeV; fitted from",
      background.validation_fit_range(f)[0], "GeV (the box edge) up")

# %% [markdown]
# ## The background table
#
# `na.run_background` (the background stage) does all of the above for every data run of the run
# output (including the HCAL zero-threshold variations from the `plane_final` histogram) and adds the
# non-upstream components. It is what `na64ana background` writes as `background.json` (a typed
# `na.BackgroundTable`), the input of the yields summary. Each run carries its validation verdict
# (`runs[].validation.flag` and `.message`): a failed verdict is logged as a warning and shown on the
# report's first screen; `na64ana background --strict-validation` (or `strict_validation=True`) makes it
# an error instead. A failed run is not dropped: its background is still computed, with the verdict
# beside it.

# %%
bkg = na.run_background(run_dir, data_ds, OUT / "background")  # writes background.json + its provenance
comps = list(bkg.runs[0].components)


def cell(c) -> str:
    return f"< {c.value:.2g}" if getattr(c, "limit", False) else f"{c.value:.3g} ± {c.unc:.2g}"


rows = [[r.run, *(cell(r.components[c]) for c in comps), f"**{cell(r.total)}**"] for r in bkg.runs]
display(Markdown(table(["run", *comps, "total n_b"], rows)))
print("blinded:", bkg.blinded, "| systematics of run III upstream:",
      {k: round(v, 5) for k, v in bkg.runs[2].upstream.syst_parts.items()})
for r in bkg.runs:
    print(r.validation.message or f"run {r.run}: validation region empty, not checked")

# %% [markdown]
# Comparison with the published 2016 total (PRD 97 072002 Table IV). The per-run totals are
# independent channels of the likelihood; their sum is shown only for this comparison.

# %%
total = sum(r.total.value for r in bkg.runs)
total_unc = sum(r.total.unc ** 2 for r in bkg.runs) ** 0.5
pub = published.entry("background.prd2018.total")
print(f"this analysis (simulated 2016 runs): {total:.3f} +- {total_unc:.3f} events")
print(f"published: {pub['value']} +- {pub['unc']} events ({pub['source']})")

# %%
for r in bkg.runs:
    fig = plots.plot_sideband_fit(sideband[{"run": r.run}], r.fit, prediction=r.upstream,
                                  box=na.SignalBox(ecal_max=r.box_ecal_max_GeV), run=r.run)
    plots.save(fig, OUT / "plots", f"sideband_c_{r.run}")
    display(fig)
