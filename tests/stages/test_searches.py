"""Search definitions as data (na64ana.searches): the shipped files, strict validation, stable hash, docs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from na64ana import published, searches
from na64ana.errors import InputError
from na64ana.physics import yields
from na64ana.selection import selection_path

ROOT = Path(__file__).resolve().parents[2]


def _raw(name: str) -> dict:
    return tomllib.loads(searches.search_path(name).read_text())


def _write(tmp_path: Path, raw: dict, name: str | None = None) -> Path:
    """Write ``raw`` as TOML (tiny writer for the nested tables used here)."""
    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    lines = []
    tables = []
    for k, v in raw.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append(f"[[{k}]]")
                lines += [f"{a} = {value(b)}" for a, b in item.items()]
        else:
            lines.insert(0, f"{k} = {value(v)}")
    for k, v in tables:
        lines.append(f"[{k}]")
        lines += [f"{a} = {value(b)}" for a, b in v.items()]
    path = tmp_path / f"{name or raw.get('name', 'x')}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_shipped_definitions_load_and_name_their_files():
    names = searches.available()
    assert {"invisible_2016", "invisible_2016_2018", "invisible_2016_2018_annihilation"} <= set(names)
    for name in names:
        s = searches.load(name)
        assert s.name == name
        assert selection_path(s.selection).exists()


def test_definitions_describe_what_the_demo_does():
    """Same selection, model, mechanism, cl, method, mass grid and DM conventions as pipeline/stats today."""
    from na64ana.pipeline import LIMIT_MASSES_GEV

    datasets = json.loads((ROOT / "datasets.json").read_text())
    shipped = (("invisible_2016", "prd2018", "S001"), ("invisible_2016_2018", "prl2019", "S003"))
    for name, campaign, source in shipped:
        s = searches.load(name)
        assert s.campaigns == [campaign] and campaign in datasets["campaigns"]
        assert [r.source for r in s.references] == [source]
        assert s.selection == "invisible"
        assert (s.signal.model, s.signal.production, s.signal.decay) == ("dark_photon", ["brem"], "invisible")
        assert s.interpretation.coupling == "eps"
        assert s.statistics.cl == published.get("statistics.cl") and s.statistics.method == "exact"
        np.testing.assert_allclose(s.masses(), LIMIT_MASSES_GEV, rtol=1e-12)
        dm = s.interpretation.dark_matter
        assert dm.alpha_d == published.get("darkmatter.alpha_d_benchmarks")
        assert dm.ratio == published.get("darkmatter.mass_ratio_aprime_chi")
        assert dm.relic == ["pseudodirac", "majorana"]
    ann = searches.load("invisible_2016_2018_annihilation")
    assert ann.campaigns == ["prl2019"] and ann.signal.production == ["brem", "annihilation"]


def test_yields_of_a_search_are_the_physics_yields():
    m = [0.01, 0.25]
    brem_only = searches.load("invisible_2016_2018").signal_yields(1e-4, m)
    np.testing.assert_allclose(brem_only.total, yields.yield_per_eot_grid(m, 1e-4), rtol=1e-6)
    both = searches.load("invisible_2016_2018_annihilation").signal_yields(1e-4, m)
    np.testing.assert_allclose(both.total, yields.signal_yield(m, 1e-4).total, rtol=1e-6)
    assert both.total[1] > 10 * brem_only.total[1]


def test_hash_is_stable_and_content_keyed(tmp_path):
    a = searches.load("invisible_2016_2018")
    assert a.hash == searches.load("invisible_2016_2018").hash
    assert re.fullmatch(r"[0-9a-f]{64}", a.hash)
    # formatting, comments, key order and explicit defaults do not change it ...
    raw = _raw("invisible_2016_2018")
    raw["signal"] = dict(reversed(list(raw["signal"].items())))
    raw["statistics"]["masses"].pop("spacing")  # default "log"
    assert searches.load(_write(tmp_path, raw)).hash == a.hash
    # ... content does
    raw["statistics"]["cl"] = 0.95
    assert searches.load(_write(tmp_path, raw)).hash != a.hash
    hashes = {searches.load(n).hash for n in searches.available()}
    assert len(hashes) == len(searches.available())


def _mutate(raw: dict, path: str, value) -> dict:
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize("path, value, field", [
    ("title", _DELETE, "title"),
    ("colour", "red", "colour"),
    ("signal.model", "z_prime", "signal.model"),
    ("signal.production", ["brem", "primakoff"], "signal.production.1"),
    ("signal.production", ["brem", "brem"], "signal.production"),
    ("signal.decay", "semi-visible", "signal.decay"),
    ("signal.beam", "mu-", "signal.beam"),
    ("signal.parameters", {"alpha_d": -1.0}, "signal.parameters.alpha_d"),
    ("signal.parameters", {"lambda": 1.0}, "signal.parameters.lambda"),
    ("references.0.source", "S999", "references.0.source"),
    ("campaigns", [], "campaigns"),
    ("statistics.cl", 1.5, "statistics.cl"),
    ("statistics.method", "bayes", "statistics.method"),
    ("statistics.masses", {"min_GeV": 1.0, "max_GeV": 0.1, "n": 3}, "statistics.masses"),
    ("interpretation.coupling", "g", None),  # the model-level consistency check (dark photon -> eps)
    ("interpretation.dark_matter.alpha_d", [0.0], "interpretation.dark_matter.alpha_d"),
    ("name", "other_name", "name"),
])
def test_bad_definitions_are_one_line_errors_naming_file_and_field(tmp_path, path, value, field):
    raw = _mutate(_raw("invisible_2016_2018"), path, value)
    file = _write(tmp_path, raw, name="invisible_2016_2018")
    with pytest.raises(InputError) as exc:
        searches.load(file)
    err = exc.value
    assert err.file == str(file)
    assert err.field == field
    assert "\n" not in str(err)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        searches.load("no_such_search")
    bad = tmp_path / "broken.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(InputError, match="not valid TOML") as exc:
        searches.load(bad)
    assert exc.value.file == str(bad)


def test_docs_embed_the_generated_schema():
    text = (ROOT / "docs" / "searches.md").read_text()
    block = re.search(r"<!-- schema:begin -->\n```json\n(.*?)\n```\n<!-- schema:end -->", text, re.S)
    assert block, "docs/searches.md must embed the schema between the schema markers"
    assert json.loads(block.group(1)) == searches.json_schema()
    assert block.group(1) == json.dumps(searches.json_schema(), indent=2, sort_keys=True)
