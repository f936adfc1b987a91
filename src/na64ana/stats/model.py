"""pyhf workspaces for the NA64 counting model (one channel per run, one or more E_ECAL bins per channel).

Why log-normal ``normsys`` with hi = 1 + r and lo = 1/(1 + r) evaluated with interpcode ``code1``: that is
exactly the log-normal constraint NA64 used, it never reaches zero (no NaN for 100% uncertainties) and it is
the model :mod:`na64ana.stats.cls` computes exactly. Workspaces are plain JSON; load them with
``pyhf.Workspace(spec).model(modifier_settings=MODIFIER_SETTINGS)`` to reproduce our numbers (pyhf's
default code4 differs by < 1% inside +-1 sigma).

Any relative uncertainty r >= 0 is allowed (kappa = 1 + r: a 300% uncertainty is hi = 4, lo = 1/4); an
asymmetric background is ``{"hi": kappa_up, "lo": kappa_down}`` (code1: kappa_up ** theta above, kappa_down **
-theta below, exactly what :class:`~na64ana.stats.cls.CountingModel` computes with ``background_kappa``).
"""

from __future__ import annotations

import math
from typing import Any

from .cls import CountingModel

MODIFIER_SETTINGS = {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code0"}}
POI = "mu"


def lognormal_sys(name: str, rel: Any) -> dict[str, Any]:
    """A pyhf normsys modifier with a log-normal response.

    ``rel``: a relative uncertainty r (hi = 1 + r, lo = 1/(1 + r), no cap), or an asymmetric
    ``{"hi": kappa_up, "lo": kappa_down}`` / ``(kappa_up, kappa_down)`` (see
    :func:`~na64ana.stats.cls.asymmetric_kappa`)."""
    if isinstance(rel, dict) or isinstance(rel, list | tuple):
        hi, lo = (rel["hi"], rel["lo"]) if isinstance(rel, dict) else rel
        hi, lo = float(hi), float(lo)
        if not (math.isfinite(hi) and math.isfinite(lo) and hi >= 1.0 >= lo > 0.0):
            raise ValueError(f"{name}: need kappa_up (hi) >= 1 >= kappa_down (lo) > 0, got hi={hi!r}, "
                             f"lo={lo!r}")
        return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}
    r = float(rel)
    if not (math.isfinite(r) and r >= 0):
        raise ValueError(f"{name}: a relative uncertainty must be finite and >= 0, got {rel!r}")
    return {"name": name, "type": "normsys", "data": {"hi": 1.0 + r, "lo": 1.0 / (1.0 + r)}}


def _nonzero(v: Any) -> bool:
    return True if isinstance(v, dict | list | tuple) else float(v) > 0


def workspace_spec(channels: list[dict[str, Any]], *, shared: dict[str, float]) -> dict[str, Any]:
    """Workspace JSON from channel dicts.

    ``channels``: ``[{"name", "signal": [...], "background": [...], "observed": [...],
    "signal_sys": {name: rel}, "background_sys": {name: rel or {"hi": kappa_up, "lo": kappa_down}}}]``
    (any rel >= 0, no cap); ``shared``: signal systematics with the
    same name in every channel (correlated, e.g. ``{"xsec": 0.1}``). Zero-yield background samples are left
    out (pyhf gives NaN for them)."""
    out_ch, obs = [], []
    for ch in channels:
        sig_mods = [{"name": POI, "type": "normfactor", "data": None}]
        sig_mods += [lognormal_sys(k, v) for k, v in shared.items() if v > 0]
        sig_mods += [lognormal_sys(k, v) for k, v in ch.get("signal_sys", {}).items() if v > 0]
        samples = [{"name": "signal", "data": [float(x) for x in ch["signal"]], "modifiers": sig_mods}]
        if any(x > 0 for x in ch["background"]):
            bmods = [lognormal_sys(k, v) for k, v in ch.get("background_sys", {}).items() if _nonzero(v)]
            bkg = [max(float(x), 1e-9) for x in ch["background"]]  # an empty bin inside a shape: tiny
            samples.append({"name": "background", "data": bkg, "modifiers": bmods})
        out_ch.append({"name": ch["name"], "samples": samples})
        obs.append({"name": ch["name"], "data": [float(x) for x in ch["observed"]]})
    return {
        "channels": out_ch,
        "observations": obs,
        "measurements": [{"name": "na64", "config": {"poi": POI, "parameters": [
            {"name": POI, "bounds": [[0.0, 50.0]], "inits": [1.0]}]}}],
        "version": "1.0.0",
    }


def pyhf_model(spec: dict[str, Any]):
    """(model, data) from a workspace spec with the log-normal (code1) interpolation."""
    import pyhf

    ws = pyhf.Workspace(spec)
    model = ws.model(modifier_settings=MODIFIER_SETTINGS)
    return model, ws.data(model)


def counting_model_from_spec(spec: dict[str, Any]) -> CountingModel:
    """The :class:`CountingModel` equivalent to a spec made by :func:`workspace_spec`.

    Names present in every channel's signal are shared; others are per channel (independent). Several
    symmetric background terms of one channel merge exactly (log-widths in quadrature); an asymmetric one
    must be the channel's only background term, and signal terms must be symmetric (else ValueError). One
    background term may appear in several channels: it is one nuisance correlated across them."""
    chans = spec["channels"]
    sig_names = [{m["name"] for m in c["samples"][0]["modifiers"] if m["type"] == "normsys"} for c in chans]
    shared_names = set.intersection(*sig_names) if len(chans) > 1 else set()
    _check_supported(spec, shared_names)
    bkg_shared_name = _shared_background_name(spec)
    bkg_shared: list[Any] = []
    signal: list[float] = []
    background: list[float] = []
    observed: list[int] = []
    channel: list[int] = []
    shared: dict[str, Any] = {}
    sig_rel: list[Any] = []
    bkg_kappa: list[Any] = []
    for i, (c, o) in enumerate(zip(chans, spec["observations"], strict=True)):
        s = c["samples"][0]
        b = c["samples"][1] if len(c["samples"]) > 1 else None
        signal += s["data"]
        background += b["data"] if b else [0.0] * len(s["data"])
        observed += [int(round(x)) for x in o["data"]]
        channel += [i] * len(s["data"])
        terms = []
        for m in s["modifiers"]:
            if m["type"] != "normsys":
                continue
            if not _symmetric(m):
                raise ValueError(f"{c['name']}: signal normsys {m['name']!r} is asymmetric "
                                 f"(hi={m['data']['hi']}, lo={m['data']['lo']}); only background terms may "
                                 "be asymmetric")
            rel = m["data"]["hi"] - 1.0
            if m["name"] in shared_names:
                shared[m["name"]] = rel
            else:
                terms.append(rel)
        sig_rel.append(terms or [0.0])
        bm = [m for m in (b["modifiers"] if b else []) if m["type"] == "normsys"]
        sh = [m for m in bm if m["name"] == bkg_shared_name]
        bkg_shared.append((float(sh[0]["data"]["hi"]), float(sh[0]["data"]["lo"])) if sh else None)
        bm = [m for m in bm if m["name"] != bkg_shared_name]
        if all(_symmetric(m) for m in bm):
            w = math.sqrt(sum(math.log(m["data"]["hi"]) ** 2 for m in bm))
            bkg_kappa.append(math.exp(w))
        elif len(bm) == 1:
            bkg_kappa.append((float(bm[0]["data"]["hi"]), float(bm[0]["data"]["lo"])))
        else:
            raise ValueError(f"{c['name']}: an asymmetric background normsys must be the channel's only "
                             f"background term, got {[m['name'] for m in bm]}")
    return CountingModel.build(signal, background, observed, channel=channel,
                               shared_rel=list(shared.values()), signal_rel=sig_rel,
                               background_kappa=bkg_kappa,
                               background_shared_kappa=bkg_shared if bkg_shared_name else None)


def _check_supported(spec: dict[str, Any], shared_names: set[str]) -> None:
    """Refuse what the exact calculation would silently get wrong (never drop a modifier or a correlation)."""
    chans = spec["channels"]
    seen_sig: dict[str, list[float]] = {}
    seen_bkg: dict[str, int] = {}
    for c in chans:
        if not 1 <= len(c["samples"]) <= 2:
            raise ValueError(f"{c['name']}: expected a signal and at most one background sample")
        for k, smp in enumerate(c["samples"]):
            for m in smp["modifiers"]:
                ok = m["type"] == "normsys" or (k == 0 and m["type"] == "normfactor" and m["name"] == POI)
                if not ok:
                    raise ValueError(f"{c['name']}: modifier {m['name']!r} of type {m['type']!r} on sample "
                                     f"{smp['name']!r} is not supported by the exact CLs (normsys only)")
                if m["type"] != "normsys":
                    continue
                if k == 0:
                    seen_sig.setdefault(m["name"], []).append(float(m["data"]["hi"]))
                else:
                    seen_bkg[m["name"]] = seen_bkg.get(m["name"], 0) + 1
    for name, his in seen_sig.items():
        if len(chans) > 1 and 1 < len(his) < len(chans):
            raise ValueError(f"signal normsys {name!r} is shared by {len(his)} of {len(chans)} channels: "
                             "only all-channel (shared) or single-channel terms are supported")
        if name in shared_names and not all(math.isclose(h, his[0], rel_tol=1e-9) for h in his):
            raise ValueError(f"signal normsys {name!r} has different sizes in different channels: "
                             "not supported")
    multi = sorted(name for name, cnt in seen_bkg.items() if cnt > 1)
    if len(multi) > 1:
        raise ValueError(f"background normsys {multi} are each shared by several channels: the exact CLs "
                         "supports one background nuisance correlated across runs (merge them)")


def _shared_background_name(spec: dict[str, Any]) -> str | None:
    names: dict[str, int] = {}
    for c in spec["channels"]:
        for smp in c["samples"][1:]:
            for m in smp["modifiers"]:
                if m["type"] == "normsys":
                    names[m["name"]] = names.get(m["name"], 0) + 1
    multi = [n for n, cnt in names.items() if cnt > 1]
    return multi[0] if multi else None


def _symmetric(m: dict[str, Any]) -> bool:
    hi, lo = float(m["data"]["hi"]), float(m["data"]["lo"])
    return math.isclose(hi * lo, 1.0, rel_tol=1e-9)
