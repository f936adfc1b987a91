"""HEPData export of a results folder with hepdata_lib, validated with hepdata-validator.

Tables: cut flow per run, expected background per run (by component), signal efficiency vs m_A' per run,
eps(m_A') limits (expected with +-1/2 sigma as asymmetric uncertainties, observed when unblinded), y(m_chi)
limits per alpha_D and alpha_D lower limits. The pyhf workspaces are attached as HistFactory resources.

Blinded inputs are never exported: blinded cut-flow rows are left out, no box counts are written, no
observed limit is written and the workspaces (which carry the observed box counts) are not attached.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from hepdata_lib import Submission, Table, Uncertainty, Variable
from hepdata_validator.full_submission_validator import FullSubmissionValidator

from .. import blinding
from ..bookkeeping import provenance
from ..errors import OutputError
from ..records import BackgroundRun, EfficiencyRun
from .results import Curve, EpsLimits, Results

log = logging.getLogger(__name__)
ARCHIVE = "submission.tar.gz"

# Record metadata (HEPData keywords). NA64 is a fixed-target experiment: a 100 GeV e- beam on an active
# lead target; cmenergies is the e- nucleon centre-of-mass energy sqrt(2 E m_N + m_N^2) = 13.7 GeV.
BEAM_GEV = 100.0
M_NUCLEON_GEV = 0.938272
REACTIONS = {"e-": "E- NUCLEUS --> E- NUCLEUS A'", "e+": "E+ NUCLEUS --> E+ NUCLEUS A'"}
PHRASES = ["Dark photon", "Dark matter", "Missing energy", "Fixed target", "Kinetic mixing", "Exotic"]


def keywords(t: Table, *, observables: list[str], beam: str = "e-", beam_GeV: float = BEAM_GEV,
             reaction: str | None = None) -> None:
    """The HEPData keywords every table carries: reaction, cmenergies (fixed target, per nucleon),
    observables and phrases."""
    sqrt_s = (2 * beam_GeV * M_NUCLEON_GEV + M_NUCLEON_GEV**2) ** 0.5
    t.keywords["reactions"] = [reaction or REACTIONS.get(beam, REACTIONS["e-"])]
    t.keywords["cmenergies"] = [round(sqrt_s, 2)]
    t.keywords["observables"] = observables
    t.keywords["phrases"] = PHRASES


def _var(
    name: str,
    values: Any,
    *,
    units: str = "",
    independent: bool = False,
    binned: bool = False,
    **qualifiers: str,
) -> Variable:
    v = Variable(name, is_independent=independent, is_binned=binned, units=units)
    v.values = [x if isinstance(x, str) else float(x) for x in values]
    for k, q in qualifiers.items():
        v.add_qualifier(k.replace("_", " "), q)
    return v


def _sym(var: Variable, label: str, unc: Any) -> None:
    u = Uncertainty(label, is_symmetric=True)
    u.values = [float(x) for x in unc]
    var.add_uncertainty(u)


def _asym(var: Variable, label: str, central: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    u = Uncertainty(label, is_symmetric=False)
    u.values = [(float(a - c), float(b - c)) for c, a, b in zip(central, lo, hi, strict=True)]
    var.add_uncertainty(u)


def _finite(*arrays: np.ndarray | None) -> np.ndarray:
    first = arrays[0]
    assert first is not None  # the first array is always given
    ok: np.ndarray = np.ones(len(first), dtype=np.bool_)
    for a in arrays:
        if a is not None:
            ok &= np.isfinite(a)
    return ok


# --- tables (pure: data in, Table out) -----------------------------------------------------------------
def cutflow_table(run: str, cf: dict[str, Any]) -> Table | None:
    """Events after each cut for one run; blinded rows are omitted (and said so)."""
    rows = [r for r in cf.get("rows", []) if not r.get("blinded") and r.get("events") is not None]
    if not rows:
        return None
    t = Table(f"Cut flow run {run}")
    n_blind = len(cf.get("rows", [])) - len(rows)
    t.description = (
        f"Events after each selection cut, run {run} ({cf.get('kind', 'data')}), selection "
        f"{cf.get('selection')} (hash {cf.get('selection_hash')})."
        + (f" {n_blind} blinded row(s) not shown." if n_blind else "")
    )
    t.location = "Report section 'Cut flows'"
    keywords(t, observables=["N"])
    t.add_variable(_var("Cut", [str(r.get("label") or r.get("cut")) for r in rows], independent=True))
    t.add_variable(_var("Events", [r["events"] for r in rows], RUN=run))
    if all(r.get("weighted") is not None for r in rows):
        t.add_variable(_var("Weighted events", [r["weighted"] for r in rows], RUN=run))
    return t


def background_table(entry: BackgroundRun) -> Table | None:
    """Expected background in the signal box for one run, by estimated component with its uncertainty, and
    the total. Components known only as an upper limit, and components estimated at zero, are named in the
    description (a value with a zero error is not a measurement; HEPData asks to omit such rows)."""
    names, vals, uncs, limits, zeros = [], [], [], [], []
    for name, d in entry.components.items():
        if d.limit:
            limits.append(f"{name} < {d.value:.3g}")
        elif not d.value and not d.unc:
            zeros.append(name)
        else:
            names.append(name)
            vals.append(d.value)
            uncs.append(float(d.unc or 0.0))
    if "upstream" not in entry.components:
        names.append("upstream (side band C)")
        vals.append(entry.upstream.value)
        uncs.append(float(entry.upstream.unc))
    names.append("total")
    vals.append(entry.total.value)
    uncs.append(float(entry.total.unc))
    run = entry.run
    t = Table(f"Background run {run}")
    t.description = (
        f"Expected background events in the signal box, run {run}. Upstream component from the "
        f"side-band-C fit exp(p1 + p2 E_ECAL), p2 = {entry.fit.p2:.4g} +- {entry.fit.p2_unc:.2g} /GeV."
        + (f" Upper limits (not included in the total as values): {', '.join(limits)}." if limits else "")
        + (f" Estimated at zero: {', '.join(zeros)}." if zeros else "")
    )
    t.location = "Report section 'Background: side-band-C fit'"
    keywords(t, observables=["N"])
    t.add_variable(_var("Component", names, independent=True))
    v = _var("Expected background", vals, RUN=run)
    _sym(v, "total", uncs)
    t.add_variable(v)
    return t


def efficiency_table(run: str, r: EfficiencyRun) -> Table:
    t = Table(f"Signal efficiency run {run}")
    t.description = (f"Signal efficiency vs A' mass, run {run}: weighted signal events passing every cut "
                     "including the signal box / A' produced per EOT above the missing-energy threshold "
                     "(so N_sig = EOT x yield per EOT x efficiency). Total uncertainty (stat. + syst.).")
    t.location = "Report section 'Signal: spectra and efficiency'"
    keywords(t, observables=["EFF"])
    m = np.asarray(r.mass_GeV, float)
    e = np.asarray(r.efficiency, float)
    u = np.asarray(r.unc, float)
    ok = _finite(m, e, u)
    t.add_variable(_var("$m_{A'}$", m[ok], units="GeV", independent=True))
    v = _var("Efficiency", e[ok], RUN=run)
    _sym(v, "total", u[ok])
    t.add_variable(v)
    return t


def eps_table(lim: EpsLimits, *, cl: float = 0.9) -> Table:
    """eps(m_A') upper limits: expected with +-1/2 sigma (asymmetric), observed only if present."""
    t = Table("Limits on epsilon")
    t.description = (
        f"{100 * cl:.0f}% CL upper limits on the kinetic mixing epsilon vs m_A' (A' -> invisible)."
        + ("" if lim.obs is not None else " Blinded: expected limits only.")
        + " The expected-limit bands are one-sided where zero events are the most likely outcome (n = 0):"
        " no outcome gives a limit below the median, so the lower band edges coincide with it."
    )
    t.location = "Report section 'Limits', figure eps_limits"
    keywords(t, observables=["epsilon"])
    ok = _finite(lim.mass, lim.exp, lim.obs, *(lim.band or {}).values())
    t.add_variable(_var("$m_{A'}$", lim.mass[ok], units="GeV", independent=True))
    exp = _var("Expected epsilon", lim.exp[ok], CL=f"{100 * cl:.0f}%")
    if lim.band is not None:
        b = {k: v[ok] for k, v in lim.band.items()}
        _asym(exp, "1 sigma", lim.exp[ok], b["m1"], b["p1"])
        _asym(exp, "2 sigma", lim.exp[ok], b["m2"], b["p2"])
    t.add_variable(exp)
    if lim.obs is not None:
        t.add_variable(_var("Observed epsilon", lim.obs[ok], CL=f"{100 * cl:.0f}%"))
    return t


# the searches beyond the invisible dark photon: what is produced, the coupling's name and unit
SEARCH_REACTIONS = {"alp": "E- NUCLEUS --> E- NUCLEUS a (a --> GAMMA GAMMA)",
                    "vector": "E- NUCLEUS --> E- NUCLEUS Z' (Z' --> NU NUBAR)",
                    "visible": "E- NUCLEUS --> E- NUCLEUS A' (A' --> E+ E-)"}
SEARCH_PHRASES = {"alp": ["Axion-like particle", "Fixed target", "Exotic"],
                  "vector": ["Z' boson", "Missing energy", "Fixed target", "Exotic"],
                  "visible": ["Dark photon", "X17", "Fixed target", "Exotic"]}


def search_tables(rec: Any) -> list[Table]:
    """Limits of a search record (vector coupling, ALP closed region, visible band): one table per edge
    of the excluded region (the lower edge; the upper edge where the region closes or is a band), with the
    expected median, its +-1/2 sigma range (asymmetric) and the observed limit unless blinded."""
    d = rec.model_dump(mode="json") if hasattr(rec, "model_dump") else dict(rec)
    search = str(d.get("search"))
    if search not in SEARCH_REACTIONS:
        return []
    var = "eps" if search == "visible" else "coupling"
    name = str(d.get("coupling") or ("epsilon" if search == "visible" else "coupling"))
    unit = "GeV$^{-1}$" if search == "alp" else ""
    cl = f"{100 * float(d.get('cl', 0.9)):.0f}%"
    pts = [p for p in d.get("points", []) if p.get("error") is None]
    out = []
    for edge, suffix in (("lower", ""), ("upper", "_upper")):
        def col(key: str, suffix: str = suffix) -> np.ndarray:
            return np.array([np.nan if p.get(key + suffix) is None else float(p[key + suffix]) for p in pts])

        mass = np.array([float(p["mass_GeV"]) for p in pts])
        exp, obs = col(f"{var}_exp"), (None if d.get("blinded") else col(f"{var}_obs"))
        bands = {k: col(f"{var}_exp_{k}") for k in ("m1", "p1", "m2", "p2")}
        have_bands = all(np.isfinite(b).any() for b in bands.values())
        ok = _finite(mass, exp, obs, *(bands.values() if have_bands else []))
        if not ok.any():
            continue
        t = Table(f"Limits on {name}, {edge} edge" if search != "vector" else f"Limits on {name}")
        t.description = (f"{cl} CL {'upper' if edge == 'lower' else 'lower'} limits on {name} vs mass "
                         f"({search} search, {d.get('analysis', '')})"
                         + (f": the {edge} edge of the excluded region." if search != "vector" else ".")
                         + (" Blinded: expected limits only." if obs is None else "")
                         + " The +-1/2 sigma ranges of the expected limit are asymmetric errors.")
        t.location = "Report section on the search limits"
        keywords(t, observables=[name], beam=str(d.get("beam_particle") or "e-"),
                 beam_GeV=float(d.get("beam_energy_GeV") or BEAM_GEV), reaction=SEARCH_REACTIONS[search])
        t.keywords["phrases"] = SEARCH_PHRASES[search]
        t.add_variable(_var("mass", mass[ok], units="GeV", independent=True))
        v = _var(f"Expected {name}", exp[ok], units=unit, CL=cl)
        if have_bands:
            lo1, hi1 = np.minimum(bands["m1"], bands["p1"])[ok], np.maximum(bands["m1"], bands["p1"])[ok]
            lo2, hi2 = np.minimum(bands["m2"], bands["p2"])[ok], np.maximum(bands["m2"], bands["p2"])[ok]
            _asym(v, "1 sigma", exp[ok], np.minimum(lo1, exp[ok]), np.maximum(hi1, exp[ok]))
            _asym(v, "2 sigma", exp[ok], np.minimum(lo2, exp[ok]), np.maximum(hi2, exp[ok]))
        t.add_variable(v)
        if obs is not None:
            t.add_variable(_var(f"Observed {name}", obs[ok], units=unit, CL=cl))
        out.append(t)
    return out


def curve_table(name: str, desc: str, c: Curve, *, xname: str, yname: str) -> Table | None:
    ok = _finite(c.x, c.y, c.y_exp)
    if not ok.any():
        return None
    t = Table(name)
    t.description = desc
    t.location = "Report section 'Limits'"
    keywords(t, observables=["y" if yname == "y" else "alpha_D"])
    t.add_variable(_var(xname, c.x[ok], units="GeV", independent=True))
    if c.y_exp is not None:
        t.add_variable(_var(f"Expected {yname}", c.y_exp[ok]))
    if c.y is not None:
        t.add_variable(_var(f"Observed {yname}", c.y[ok]))
    return t


# --- submission -----------------------------------------------------------------------------------------
def build_submission(res: Results, *, staging: Path) -> Submission:
    """All tables available in ``res``; workspaces copied to ``staging`` (unique names) and attached."""
    sub = Submission()
    blinded = res.blinded
    limits = res.limits()
    what = (f"campaign {res.campaign()}" if res.campaign() else
            f"limits from {limits.analysis}" if limits is not None else "no campaign")
    search = str(limits.search) if limits is not None and limits.search else "dark_photon"
    sub.comment = f"NA64 {search.replace('_', ' ')} search (na64ana), {what}." + (
        " BLINDED: no signal-box content and no observed limits are included." if blinded else ""
    )
    # the data a reader needs: cut flows of the campaign sample only (signal and benchmark MC samples are
    # summarised by the efficiency tables), background, efficiencies, limits
    tables: list[Table | None] = [cutflow_table(r, cf) for r, cf in res.cutflows.items()
                                  if cf.get("sample", "campaign") == "campaign"
                                  and cf.get("selection", "invisible") == "invisible"]
    bkg, eff = res.background(), res.efficiency()
    tables += [background_table(e) for e in (bkg.runs if bkg is not None else [])]
    tables += [efficiency_table(r, d) for r, d in (eff.runs if eff is not None else {}).items()]
    tables += search_tables(limits) if limits is not None else []
    cl = float(limits.cl) if limits is not None else 0.9
    lim = res.eps_limits() if search not in SEARCH_REACTIONS else None  # a search has its own tables
    if lim is not None:
        tables.append(eps_table(lim, cl=cl))
    for key, c in res.y_limits().items():
        tables.append(
            curve_table(
                f"Limits on y ({key})",
                f"{100 * cl:.0f}% CL upper limits on y = eps^2 alpha_D "
                f"(m_chi/m_A')^4 for m_A' = 3 m_chi, {key}.",
                c,
                xname="$m_\\chi$",
                yname="y",
            )
        )
    for model, c in res.alpha_d_limits().items():
        tables.append(
            curve_table(
                f"Lower limits on alpha_D ({model})",
                f"Lower limits on alpha_D from the {model} relic relation, m_A' = 3 m_chi.",
                c,
                xname="$m_\\chi$",
                yname="alpha_D min",
            )
        )
    for t in tables:
        if t is not None:
            sub.add_table(t)
    for text in _reference_texts(res):
        for arxiv in sorted(set(re.findall(r"arXiv:(\d{4}\.\d{4,5})", text))):
            sub.add_link(f"arXiv:{arxiv}", f"https://arxiv.org/abs/{arxiv}")
    if blinded:
        log.info("blinded: pyhf workspaces (observed box counts) are not attached")
    else:
        staging.mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        for ws in res.workspaces():
            name = ws.name if ws.name not in seen else f"{ws.parent.parent.name}_{ws.name}"
            seen.add(name)
            dst = staging / name
            shutil.copyfile(ws, dst)
            sub.add_additional_resource(
                f"pyhf workspace {ws.stem}", str(dst), copy_file=True, file_type="HistFactory"
            )
    return sub


def _reference_texts(res: Results) -> list[str]:
    """The campaign's description and source references (datasets.json), for the record links."""
    ds = res.json("datasets")
    if not isinstance(ds, dict):
        return []
    camp = (ds.get("campaigns") or {}).get(res.campaign() or ds.get("default_campaign") or "", {})
    codes = re.findall(r"[A-Z]+\d+", str(camp.get("source", "")))
    sources = ds.get("sources") or {}
    return [str(camp.get("description", ""))] + [str(sources[c]) for c in codes if c in sources]


def validate_archive(archive: str | Path) -> tuple[bool, list[str]]:
    """Validate a submission tarball with hepdata-validator; returns (ok, messages)."""

    v = FullSubmissionValidator()
    ok = v.validate(archive=str(archive))
    msgs = [f"{f}: {m.message}" for f, ms in v.get_messages().items() for m in ms]
    return bool(ok), msgs


def export_hepdata(results_dir: str | Path, out: str | Path) -> Path:
    """Write ``out/submission/*.yaml`` and ``out/submission.tar.gz``, validated. Returns the archive path.

    Recorded as stage "export" in ``out/provenance.json`` (the result files read, blinding)."""
    clock = provenance.Clock()
    res = Results(results_dir)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sub = build_submission(res, staging=out / "resources")
    if not sub.tables:
        raise OutputError(
            "nothing to export: no cut flows, background, efficiency or limits found", file=str(results_dir)
        )
    # hepdata_lib writes the tarball into the current directory: run it inside ``out``.
    with contextlib.chdir(out):
        sub.create_files("submission", validate=False, remove_old=True)
    archive = out / ARCHIVE
    ok, msgs = validate_archive(archive)
    if not ok:
        raise OutputError("HEPData validation failed: " + "; ".join(msgs[:5]), file=str(archive))
    with tarfile.open(archive) as tar:
        log.info("HEPData submission %s: %d files, validated", archive, len(tar.getnames()))
    state = blinding.state(res.blinded)
    provenance.write(out, "export", inputs=res.inputs(), outputs=[ARCHIVE, "submission", "resources"],
                     blinding=state, metrics=clock.metrics(), results=str(results_dir), archive=str(archive),
                     tables=len(sub.tables))
    return archive


def run_stage(results_dir: str | Path, out: str | Path) -> Path:
    """The export stage: claim ``out`` (an na64ana folder or empty) and write the validated submission
    (:func:`export_hepdata`, which records the stage); returns the archive path."""
    out = provenance.prepare_outdir(out, stage="export")
    archive = export_hepdata(results_dir, out)
    log.info("wrote %s (validated)", archive)
    return archive
