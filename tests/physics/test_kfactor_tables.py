"""k-factor table choice (issue #14, item 7): DMG4 v1.2 stays the default, other tables by name or CSV."""

import numpy as np
import pytest

from na64ana.errors import InputError
from na64ana.physics import yields
from na64ana.physics.production import brem

DMG4_HEADER = "m_aprime_GeV,E0_20GeV,E0_40GeV,E0_60GeV,E0_80GeV,E0_100GeV,E0_120GeV,E0_140GeV,E0_160GeV"


def _scaled_dmg4(tmp_path, factor, *, source=True, name="k.csv"):
    m, e, k, _ = brem._k_table()
    lines = ["# k-factor test table"] + ([f"# Source: test, DMG4 v1.2 x {factor:g}"] if source else [])
    lines.append("m_aprime_GeV," + ",".join(f"E0_{x:g}GeV" for x in e))
    lines += [f"{float(mi)!r}," + ",".join(repr(float(v) * factor) for v in row)
              for mi, row in zip(m, k, strict=True)]
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_default_is_dmg4_v1_2_and_unchanged():
    assert brem.DEFAULT_KFACTOR_TABLE == "dmg4_v1_2"
    assert "DMG4 v1.2" in brem.kfactor_source()
    assert float(brem.k_factor(0.1, 100.0)) == pytest.approx(1.65122, rel=1e-6)  # table value
    assert float(brem.sigma_total(0.1, 100.0, 1e-4)) == pytest.approx(106.04, rel=1e-3)  # DMG4 testCS
    m = np.array([0.002, 0.02, 0.2, 0.9])
    base = yields.yield_per_eot_grid(m, 1e-4, e0=100.0, emiss_min=50.0, xsec="etl")
    named = yields.yield_per_eot_grid(m, 1e-4, e0=100.0, emiss_min=50.0, xsec="etl:dmg4_v1_2")
    assert np.array_equal(base, named)
    assert np.array_equal(brem.k_factor(m, 100.0), brem.k_factor(m, 100.0, kfactor_table="dmg4_v1_2"))


def test_another_table_by_path_threads_through_the_yields(tmp_path):
    p = _scaled_dmg4(tmp_path, 2.0)
    m = np.array([0.01, 0.3])
    assert brem.sigma_total(m, 100.0, 1e-4, kfactor_table=p) == pytest.approx(
        0.5 * brem.sigma_total(m, 100.0, 1e-4), rel=1e-12)
    base = yields.yield_per_eot_grid(m, 1e-4, e0=100.0, emiss_min=50.0, xsec="etl")
    other = yields.yield_per_eot_grid(m, 1e-4, e0=100.0, emiss_min=50.0, xsec=f"etl:{p}")
    assert other == pytest.approx(0.5 * base, rel=1e-9)  # k doubled everywhere: the yield halves


def test_register_by_name(tmp_path):
    p = _scaled_dmg4(tmp_path, 1.5)
    brem.register_kfactor_table("test_x1p5", p)
    assert "test_x1p5" in brem.kfactor_tables()
    assert float(brem.k_factor(0.1, 100.0, "test_x1p5")) == pytest.approx(1.5 * 1.65122, rel=1e-6)
    assert float(brem.sigma_total(0.1, 100.0, 1e-4, xsec="etl:test_x1p5")) == pytest.approx(106.04 / 1.5,
                                                                                          rel=1e-3)
    brem.register_kfactor_table("test_x1p5", p)  # same file again: fine
    with pytest.raises(InputError, match="already registered"):
        brem.register_kfactor_table("test_x1p5", _scaled_dmg4(tmp_path, 3.0, name="other.csv"))


@pytest.mark.parametrize("content, match", [
    ("m_aprime_GeV,E0_20GeV,E0_40GeV\n0.001,1,1\n0.002,1,1\n", "Source"),
    ("# Source: x\nmass,E0_20GeV,E0_40GeV\n0.001,1,1\n0.002,1,1\n", "header"),
    ("# Source: x\nm_aprime_GeV,E0_20GeV,E0_40GeV\n0.002,1,1\n0.001,1,1\n", "m_aprime_GeV"),
    ("# Source: x\nm_aprime_GeV,E0_40GeV,E0_20GeV\n0.001,1,1\n0.002,1,1\n", "E0 columns"),
    ("# Source: x\nm_aprime_GeV,E0_20GeV,E0_40GeV\n0.001,1,-1\n0.002,1,1\n", "row 1"),
    ("# Source: x\nm_aprime_GeV,E0_20GeV,E0_40GeV\n0.001,1,abc\n0.002,1,1\n", "not a number"),
    ("# Source: x\nm_aprime_GeV,E0_20GeV,E0_40GeV\n0.001,1\n0.002,1,1\n", "columns"),
])
def test_bad_tables_are_one_line_errors_naming_the_field(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=match) as err:
        brem.k_factor(0.0015, 30.0, kfactor_table=p)
    assert err.value.field == "kfactor_table" and "\n" not in str(err.value)


def test_bad_names_and_spellings():
    with pytest.raises(InputError, match="unknown k-factor table") as err:
        brem.k_factor(0.1, 100.0, kfactor_table="dmg4_v0_9")
    assert err.value.field == "kfactor_table"
    for bad in ("etl:", "ww:dmg4_v1_2", "exact"):
        with pytest.raises(InputError) as err:
            brem.check_xsec(bad)
        assert err.value.field == "xsec"
    with pytest.raises(InputError, match="two k-factor tables"):
        brem.sigma_total(0.1, 100.0, xsec="etl:dmg4_v1_2", kfactor_table="other")
    with pytest.raises(InputError, match="outside the k-factor table 'dmg4_v1_2'"):
        brem.check_mass(5.0, 100.0, "etl")
