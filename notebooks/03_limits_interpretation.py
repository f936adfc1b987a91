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
# # Limits and their dark-matter interpretation
#
# The limit setting reads one file, the **yields summary**: per run the EOT, the signal efficiency
# (vs m_A'), the expected background and the observed count, with their uncertainties. It can be written
# by hand from a paper or by the analysis chain. From it we build
#
# 1. a pyhf workspace per A' mass (one channel per run, log-normal nuisances),
# 2. 90% CL upper limits with an **exact small-count CLs** (and see why pyhf's asymptotic formulae are
#    wrong at n = 0),
# 3. the exclusion ε(m_A'),
# 4. its reading for light thermal dark matter: y(m_χ) with the relic targets for α_D = 0.5 and 0.1, and
#    lower limits on α_D.
#
# Outputs (limits JSON, workspaces, figures) go to a temporary folder (or `$NA64ANA_NB_OUT`).

# %%
# %matplotlib inline
import json

import matplotlib.style
import numpy as np
import pyhf
from IPython.display import Markdown, display

import na64ana as na
from na64ana import efficiency, published, summary
from na64ana.bookkeeping import provenance
from na64ana.bookkeeping.locations import scratch_dir
from na64ana.physics import darkmatter
from na64ana.presentation import plots
from na64ana.presentation.report import table
from na64ana.presentation.results import alpha_d_limits, eps_limits, interp_loglog, y_limits
from na64ana.processing import outputs
from na64ana.simulation import simulate_campaign, simulate_signal_samples
from na64ana.stats import cls, interpret
from na64ana.stats import limits as lim
from na64ana.stats.model import counting_model_from_spec, pyhf_model, workspace_spec

REPO = na.repo_root()
OUT = scratch_dir("limits")
CL = float(published.get("statistics.cl"))
SEED = 2016
print("outputs:", OUT, "| CL =", CL)

# %% [markdown]
# ## 1. Yields summaries
#
# ### A published one: PRL 123 121801 (2016–2018, 2.84·10¹¹ EOT)
#
# `examples/summaries/prl2019_published.json` is written by hand from the paper: efficiencies light →
# heavy A' per run, the published background total split by EOT (no per-run split is published), and
# the published observation, 0 events. `summary.load` validates it (every bad field is one error naming
# it).

# %%
prl = na.load_summary(REPO / "examples" / "summaries" / "prl2019_published.json")
print(prl.analysis, "| blinded:", prl.blinded, "| masses:", len(prl.masses_GeV))


def runs_table(s: summary.Summary) -> str:
    m_lo, m_hi = min(s.masses_GeV), max(s.masses_GeV)
    return table(["run", "EOT", f"eff. ({m_lo * 1e3:g} MeV → {m_hi:g} GeV)", "n_b", "observed"],
                 [[r.name, r.eot, f"{float(r.efficiency_at(m_lo)):.3f} → {float(r.efficiency_at(m_hi)):.3f}",
                   f"{r.background:.3g} ± {r.background_unc:.2g}",
                   "blinded" if r.observed is None else str(r.observed)] for r in s.runs])


display(Markdown(runs_table(prl)))

# %% [markdown]
# ### One built by the chain: the simulated 2016 campaign (blinded)
#
# The chain writes the same contract from its own stages: EOT from `datasets.json`, background from the
# side-band estimate (notebook 02), efficiency vs mass from signal MC through the same selection, and the
# box count from the region counts — `null` here, because the data are blinded: only *expected* limits
# can be computed from this summary. (A small signal-MC grid keeps this fast; `na64ana demo` uses ten
# masses and 2·10⁴ events each.)

# %%
CAMPAIGN = "prd2018"
data_ds = simulate_campaign(REPO / "datasets.json", out_dir=OUT / "data", campaign=CAMPAIGN, seed=SEED)
run_dir = OUT / "run"
outputs.write_run(run_dir, na.process(na.plan(data_ds, campaign=CAMPAIGN), "invisible"),
                  processor="invisible", unblind=False, datasets_file=data_ds)
bkg = na.compute_background(run_dir, data_ds)
sig_ds = simulate_signal_samples(REPO / "datasets.json", out_dir=OUT / "signal_mc", campaign=CAMPAIGN,
                                 masses_GeV=[0.001, 0.01, 0.1, 1.0], n_events=3000, seed=SEED)
eff = efficiency.measure(sig_ds, out=OUT / "efficiency", campaign=CAMPAIGN)
camp = na.load_datasets(REPO / "datasets.json").campaign(CAMPAIGN)
masses = [float(m) for m in np.geomspace(1e-3, 1.0, 10)]
chain_dict = summary.from_results(analysis="na64ana prd2018 (simulated, notebook)", campaign=camp,
                                  background=bkg, efficiency=eff, regions=outputs.load_regions(run_dir),
                                  masses_GeV=masses, cl=CL)
chain = summary.validate(chain_dict)
provenance.write_json(OUT / "summary_prd2018_chain.json", chain_dict)
print(chain.analysis, "| blinded:", chain.blinded)
display(Markdown(runs_table(chain)))

# %% [markdown]
# ## 2. The pyhf workspace
#
# Per mass, the signal in run i is N_i = EOT_i · ε_i(m) · n_A'(m, ε) with n_A' ∝ ε². The workspace is
# normalised so that the nominal total signal is N₉₀(n = 0) = 2.30 events; the POI μ then scales ε² and
# the fits stay well inside their bounds. Nuisances are log-normal (`normsys`, hi = 1 + r,
# lo = 1/(1 + r), interpolation code1): the cross section shared by all runs, efficiency and EOT per run,
# background per run.

# %%
m_demo = 0.0167
n_ref = cls.poisson_upper_limit(0, 0.0, CL)
spec = lim.mass_spec(prl, m_demo, n_ref)
model, data = pyhf_model(spec)
print("channels:", model.config.channels)
print("parameters:", model.config.par_order)
print("expected (mu = 1):", np.round(model.expected_actualdata(model.config.suggested_init()), 4))
print(json.dumps(spec["channels"][0], indent=1)[:900], "...")

# %% [markdown]
# ## 3. Exact small-count CLs vs pyhf asymptotic
#
# Take the simplest case: one bin, the published PRL 2019 background b = 0.53 ± 0.17 and n = 0
# observed. Without systematics CLs = P(0 | s + b) / P(0 | b) = e^(−s) whatever b is, so the 90% CL limit
# is s = ln 10 = 2.30 events — the number NA64 quotes. With the background uncertainty as a log-normal
# nuisance the exact hybrid CLs enumerates the discrete outcomes and stays at ~2.3. The asymptotic
# formulae treat the test statistic q̃_μ as if it followed its large-sample (χ²-like) distribution; with
# ≲ 1 expected event it is discrete, and the n = 0 outcome is the *most likely* background-only outcome.
# The asymptotic CLs is then too small and the limit too strong by ~30%: it would exclude signals that
# the experiment cannot exclude (undercoverage).

# %%
b_pub = published.entry("background.prl2019.total")
spec1 = workspace_spec([{"name": "box", "signal": [1.0], "background": [b_pub["value"]], "observed": [0],
                         "background_sys": {"bkg": b_pub["unc"] / b_pub["value"]}}], shared={})
exact1 = cls.limits(counting_model_from_spec(spec1), CL)
asym_obs, asym_exp = lim.asymptotic_limits(spec1, CL)
display(Markdown(table(["method", "90% CL limit on s (events), n = 0"], [
    ["published N₉₀ (S001)", published.get("statistics.n90_zero_observed")],
    ["classical CLs, no systematics", cls.poisson_upper_limit(0, b_pub["value"], CL)],
    ["exact hybrid CLs (na64ana)", exact1.mu_obs],
    ["pyhf asymptotic", asym_obs],
])))

# %%
model1, data1 = pyhf_model(spec1)
exact_calc = cls.ExactCLs(counting_model_from_spec(spec1))
mus = np.linspace(0.2, 4.0, 20)
cls_exact = [float(exact_calc.cls(mu)[0]) for mu in mus]
cls_asym = [float(pyhf.infer.hypotest(mu, data1, model1, test_stat="qtilde", calctype="asymptotics"))
            for mu in mus]
with matplotlib.style.context(plots.STYLE):  # the style of the na64ana figures
    fig = plots.new_figure((8, 6))
    ax = fig.subplots()
    ax.plot(mus, cls_exact, "k-", lw=2, label="exact hybrid CLs")
    ax.plot(mus, cls_asym, "r--", lw=2, label="pyhf asymptotic")
    ax.axhline(1 - CL, color="grey", ls=":", label=f"1 - CL = {1 - CL:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("signal events s")
    ax.set_ylabel(r"CL$_s$ (n = 0 observed)")
    ax.legend(fontsize=12)
    plots.label(ax, llabel="", rlabel=f"b = {b_pub['value']} ± {b_pub['unc']}")
plots.save(fig, OUT / "plots", "cls_exact_vs_asymptotic")
display(fig)

# %% [markdown]
# The same comparison on the full three-run PRL 2019 model at m_A' = 16.7 MeV, in ε (ε ∝ √s, so the
# asymptotic limit is ~15% too strong in ε). At n = 0 the exact observed limit equals the expected
# median: n = 0 is the median background-only outcome.

# %%
y_demo = float(lim.yields_per_eot(prl, [m_demo])[0])
rows = []
for method in ("exact", "asymptotic"):
    p = lim.limit_point(prl, m_demo, y_demo, method=method, cl=CL)
    rows.append([method, p["eps_obs"], p["eps_exp"]])
display(Markdown(table(["method", "ε observed", "ε expected (median)"], rows)))
print(f"asymptotic / exact (observed): {rows[1][1] / rows[0][1]:.3f}")

# %% [markdown]
# ## 4. Limits on ε(m_A')
#
# `limits.scan` runs the exact CLs at every mass of the summary and writes the workspaces;
# `interpret.add_interpretation` adds y and α_D. The published summary has an observation (0 events),
# so observed and expected limits are shown; the scan also cross-checks against the runs-merged
# N₉₀ counting limit.

# %%
res_prl = lim.scan(prl, method="exact", out_dir=OUT / "limits_prl2019")
interpret.add_interpretation(res_prl)
provenance.write_json(OUT / "limits_prl2019" / "limits.json", res_prl)
print(res_prl["method"], "| failed masses:", res_prl["n_failed"],
      "| max |rel. diff| to the merged N90:", round(res_prl["simplified_check"]["max_abs_rel_diff"], 3))
eps_prl = eps_limits(res_prl, blinded=prl.blinded)
fig = plots.plot_eps_limits(eps_prl, llabel="Reinterpretation", rlabel="PRL 123 121801 inputs", cl=CL)
plots.save(fig, OUT / "plots", "eps_limits_prl2019")
display(fig)

# %%
rows = [[m, interp_loglog(eps_prl.mass, eps_prl.exp, m), interp_loglog(eps_prl.mass, eps_prl.obs, m)]
        for m in (0.001, 0.01, 0.0167, 0.1, 1.0)]
display(Markdown(table(["m_A' [GeV]", "ε expected", "ε observed"], rows)))

# %% [markdown]
# The chain-built 2016 summary is blinded, so only the expected limit (with its ±1σ/±2σ bands) exists.
# It is compared with the expected limit of the summary written from PRD 97 072002
# (`examples/summaries/prd2018_published.json`) on the same mass grid.

# %%
res_chain = lim.scan(chain, method="exact", out_dir=OUT / "limits_chain")
interpret.add_interpretation(res_chain)
provenance.write_json(OUT / "limits_chain" / "limits.json", res_chain)
prd_raw = json.loads((REPO / "examples" / "summaries" / "prd2018_published.json").read_text())
prd = summary.validate({**prd_raw, "masses_GeV": masses})
res_prd = lim.scan(prd, method="exact")
eps_chain = eps_limits(res_chain, blinded=chain.blinded)
eps_prd = eps_limits(res_prd, blinded=True)  # compare expected with expected
print("chain summary blinded:", res_chain["blinded"], "| observed limits present:", eps_chain.obs is not None)
fig = plots.plot_eps_limits(eps_chain, rlabel="prd2018, simulated", cl=CL)
fig.axes[0].plot(eps_prd.mass, eps_prd.exp, color="tab:blue", lw=2, label="expected, PRD 97 072002 inputs")
fig.axes[0].legend(fontsize=11, loc="upper left")
plots.save(fig, OUT / "plots", "eps_limits_chain")
display(fig)

# %% [markdown]
# ## 5. Light dark matter: y(m_χ) and the relic targets
#
# With m_A' = 3 m_χ and BR(A' → χχ̄) ≈ 1, ε limits become limits on
# y = ε² α_D (m_χ/m_A')⁴. Shown for the published benchmarks α_D = 0.5 and 0.1 with the thermal relic
# targets (scalar, pseudo-Dirac, Majorana DM); below a target curve that model is excluded.

# %%
print("alpha_D benchmarks:", published.get("darkmatter.alpha_d_benchmarks"),
      "| m_A'/m_chi =", darkmatter.default_ratio())
relic = {kind: darkmatter.relic_target(kind) for kind in darkmatter.RELIC_KINDS}
ylims = y_limits(res_prl, blinded=prl.blinded)
fig = plots.plot_y_limits(ylims, relic, llabel="Reinterpretation", cl=CL)
plots.save(fig, OUT / "plots", "y_limits_prl2019")
display(fig)

# %% [markdown]
# How close the limit comes to each target: the smallest ratio y₉₀ / y_relic over the scanned masses
# (below 1, that target is excluded there).

# %%
m_chi = np.asarray(res_prl["y_limits"]["m_chi_GeV"])
rows = []
for key in ylims:
    y_obs = np.asarray(res_prl["y_limits"][key]["y_obs"], dtype=float)
    for kind, (rm, _) in relic.items():
        inside = (m_chi >= rm.min()) & (m_chi <= rm.max())
        ratio = y_obs[inside] / darkmatter.relic_y_at(kind, m_chi[inside])
        best = int(np.argmin(ratio))
        rows.append([key, kind, ratio[best], m_chi[inside][best], "yes" if ratio[best] < 1 else "no"])
display(Markdown(table(["α_D", "relic target", "min y₉₀ / y_relic", "at m_χ [GeV]", "excluded somewhere"],
                       rows)))

# %% [markdown]
# ## 6. Lower limits on α_D
#
# Turning the relic relation around: for each m_χ, reproducing the observed DM density with ε below the
# limit needs α_D above 0.02 f (10⁻³/ε₉₀)² (m_A'/100 MeV)⁴ (10 MeV/m_χ)² (f = 0.25 pseudo-Dirac, 3
# Majorana). Values of α_D below the curves are excluded; α_D ≳ 1 is non-perturbative territory.

# %%
fig = plots.plot_alpha_d(alpha_d_limits(res_prl, blinded=prl.blinded), llabel="Reinterpretation", cl=CL)
plots.save(fig, OUT / "plots", "alpha_d_prl2019")
display(fig)
