"""'na64ana summary': run output + background.json + efficiency.json -> DIR/summary.json.

The yields summary handed to 'na64ana limits': EOT per run (datasets file, minus skipped input files),
efficiency vs mass (signal MC), background and its uncertainty, observed box counts (null when the run
output is blinded: expected limits only). The same builder as 'na64ana demo'.

'na64ana summary --template FILE' writes a starting file to fill in by hand instead (every field, each
explained in its "notes"); the contract is docs/summary_contract.md and the JSON schema
src/na64ana/data/summary.schema.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import setup_logging

DEFAULT_MASSES = "31 log-spaced, 1 MeV - 1 GeV (the demo's grid)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="yields summary for the limits (summary.json)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--template", metavar="FILE", default=None,
                   help="write a hand-fillable summary to FILE ('-': standard output), every field explained "
                   "in its notes, and stop (no other option needed)")
    p.add_argument("--run-dir", required=False,
                   help="output folder of 'na64ana run' (the observed box counts)")
    p.add_argument("--background", required=False, metavar="PATH",
                   help="background.json or the output folder of 'na64ana background'")
    p.add_argument("--efficiency", required=False, metavar="PATH",
                   help="efficiency.json or the output folder of 'na64ana efficiency'")
    p.add_argument("--datasets", default="datasets.json", help="datasets file of the data (EOT per run)")
    p.add_argument("--campaign", default=None, help="campaign (default: background.json's)")
    p.add_argument("--out", default=None, help="output folder (required without --template)")
    p.add_argument("--masses", nargs="+", type=float, default=None, metavar="GEV",
                   help=f"A' masses of the limit scan (default: {DEFAULT_MASSES})")
    p.add_argument("--analysis", default=None, help="label of the analysis (default: campaign and data kind)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import summary
    from ..errors import InputError
    from ..pipeline import LIMIT_MASSES_GEV

    if args.template is not None:
        text = json.dumps(template(), indent=2) + "\n"
        if args.template == "-":
            print(text, end="")
        else:
            if Path(args.template).exists():
                raise InputError("exists; not overwritten (choose another name)", file=args.template)
            Path(args.template).write_text(text)
        return 0
    missing = [f"--{n.replace('_', '-')}" for n in ("run_dir", "background", "efficiency", "out")
               if getattr(args, n) is None]
    if missing:
        raise InputError("required without --template: " + ", ".join(missing))

    masses = LIMIT_MASSES_GEV if args.masses is None else tuple(args.masses)
    if any(not m > 0 for m in masses):
        raise InputError("masses must be positive (GeV)", field="--masses")
    setup_logging(args.out, "summary")
    summary.run_stage(args.run_dir, args.background, args.efficiency, args.datasets, args.out,
                      masses_GeV=masses, analysis=args.analysis, campaign=args.campaign)
    return 0


# --- the hand-written contract: template, JSON schema, markdown ---------------------------------------------
def template() -> dict[str, Any]:
    """A complete, valid summary to edit (the published PRL 123 121801 numbers, blinded), every field
    explained in ``notes``; validated against :class:`na64ana.summary.Summary` by the tests."""
    return {
        "analysis": "my reinterpretation (say what it is)",
        "beam_energy_GeV": 100.0,
        "emiss_min_GeV": 50.0,
        "cross_section": "etl",
        "cl": 0.9,
        "correlated": {"xsec": 0.1},
        "masses_GeV": [0.001, 0.01, 0.1, 1.0],
        "runs": [
            {"name": "I", "eot": 2.84e11, "eot_unc": 0.02,
             "efficiency": {"mass_GeV": [0.001, 1.0], "value": [0.69, 0.5]}, "efficiency_unc": 0.1,
             "background": 0.53, "background_unc": 0.17, "observed": None,
             "notes": {"source": "where each number comes from (paper, table)"}},
        ],
        "notes": {
            "analysis": "free label of the analysis; shown on the report and the plots",
            "beam_energy_GeV": "beam energy (GeV)",
            "emiss_min_GeV": "missing-energy threshold of the signal box (GeV); A' yield counted above it",
            "cross_section": "'etl' (exact tree level, default) or 'ww' (Weizsaecker-Williams)",
            "cl": "confidence level of the limits, e.g. 0.9",
            "correlated": "relative signal uncertainties shared by all runs, e.g. {\"xsec\": 0.1}; "
                          "{} for none",
            "masses_GeV": "A' masses of the limit scan (GeV)",
            "runs.name": "run label, unique",
            "runs.eot": "electrons on target",
            "runs.eot_unc": "relative EOT uncertainty, in [0, 1)",
            "runs.efficiency": "signal efficiency: a number or {mass_GeV: [...], value: [...]} (log-mass "
                               "interpolation, constant outside)",
            "runs.efficiency_unc": "relative efficiency uncertainty, in [0, 1)",
            "runs.background": "expected background events in the signal box",
            "runs.background_unc": "ABSOLUTE background uncertainty (or background_unc_up/_down)",
            "runs.observed": "events observed in the box (integer), or null: blinded (expected limits only)",
        },
    }


def schema() -> dict[str, Any]:
    """The JSON schema of the yields summary, generated from :class:`na64ana.summary.Summary`."""
    from ..summary import Summary

    doc = Summary.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "na64ana yields summary"
    doc["description"] = ("Everything the limit setting needs, writable by hand (docs/summary_contract.md). "
                          "Generated from na64ana.summary.Summary; do not edit.")
    return doc


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def _type(p: dict[str, Any] | bool) -> str:
    if not isinstance(p, dict) or not p:
        return "any"
    if "$ref" in p:
        return p["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in p:
        return " or ".join(_type(x) for x in p["anyOf"])
    if "enum" in p:
        return " | ".join(json.dumps(v) for v in p["enum"])
    if "const" in p:
        return json.dumps(p["const"])
    if p.get("type") == "array":
        return f"list of {_type(p.get('items', {}))}"
    if p.get("type") == "object" and "additionalProperties" in p:
        return f"object of {_type(p['additionalProperties'] or {})}"
    return str(p.get("type", "any"))


def _limits(p: dict[str, Any]) -> str:
    marks = {"exclusiveMinimum": "> {}", "minimum": ">= {}", "exclusiveMaximum": "< {}", "maximum": "<= {}",
             "minItems": "at least {} item(s)", "minLength": "non-empty"}
    return ", ".join(f.format(p[k]) for k, f in marks.items() if k in p)


def contract_markdown() -> str:
    """docs/summary_contract.md: the schema as tables (one per object), a minimal example and the rules."""
    doc = schema()
    objs = {"Summary": doc, **doc.get("$defs", {})}
    out = [
        "# The yields summary contract (summary.json)",
        "",
        "<!-- generated by na64ana.cli.summary.contract_markdown(); a test fails when it is stale -->",
        "",
        "The yields summary is everything the limit setting (`na64ana limits`) needs. `na64ana summary` "
        "writes it from the analysis stages; a phenomenologist can write it by hand from a paper. Start from "
        "`na64ana summary --template my_summary.json` (every field present and explained in `notes`). "
        "The machine-readable JSON schema is `src/na64ana/data/summary.schema.json` (generated from "
        "`na64ana.summary.Summary`). Validation errors list every problem of the file at once.",
        "",
        "The minimal hand-written summary is `masses_GeV` and, per run, `name`, `eot`, `efficiency`, "
        "`background` and `observed`: every other field has a default (column *default* below: "
        "`analysis` \"unnamed summary\", `beam_energy_GeV` 100, `emiss_min_GeV` 50, `cross_section` "
        "\"etl\", `cl` 0.9, `correlated` {} (no shared signal uncertainty), and per run `eot_unc`, "
        "`efficiency_unc` and `background_unc` 0, i.e. *no* uncertainty). Those defaults are assumptions: "
        "`na64ana limits` prints the ones a file relies on and the report lists them under the result.",
        "",
        "Rules beyond the types: relative uncertainties except `background_unc` (absolute); "
        "a background uncertainty larger than the background is allowed (a wide log-normal, kappa = 1 + r); "
        "a zero background needs a zero uncertainty; "
        "`observed: null` means blinded (expected limits only) and must then be null for every run; "
        "mass-dependent efficiencies are interpolated linearly in log10(mass), constant outside; "
        "`emiss_min_GeV` must be below `beam_energy_GeV`; a positron beam needs `production`.",
        "",
    ]
    for name, obj in objs.items():
        props = obj.get("properties")
        if not props:
            continue
        req = set(obj.get("required", []))
        out += [f"## {name}", "", "| field | required | type | limits | default | meaning |",
                "|---|---|---|---|---|---|"]
        for f, p in props.items():
            default = json.dumps(p["default"]) if "default" in p else ""
            desc = str(p.get("description", "")).replace("|", "/").replace("\n", " ")
            out.append(f"| `{f}` | {'yes' if f in req else 'no'} | {_type(p).replace('|', '/')} | "
                       f"{_limits(p)} | {default} | {desc} |")
        out.append("")
    out += ["## Template", "", "```json", json.dumps(template(), indent=2), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":  # regenerate the shipped contract: python -m na64ana.cli.summary
    root = Path(__file__).resolve().parents[3]
    (Path(__file__).resolve().parents[1] / "data" / "summary.schema.json").write_text(schema_text())
    (root / "docs" / "summary_contract.md").write_text(contract_markdown())
