"""A registry with a catalog key imports the catalog's modules for a missing name, in order, only as far as needed."""

from __future__ import annotations

import sys
import types

import pytest

from torchworks import catalog
from torchworks.core.errors import UnknownNameError
from torchworks.core.registry import Registry

PLUGINS = {
    "twtest_plug_a": "import twtest_reg\ntwtest_reg.REG.add('alpha', lambda: 'a')\n",
    # looks names up while being imported: a known one, and an unknown one (must not recurse into the catalog)
    "twtest_plug_b": ("import twtest_reg\nR = twtest_reg.REG\nR.add('beta', lambda: R.build('alpha') + 'b')\n"
                      "SEEN = ('alpha' in R, 'zeta' in R)\n"),
    "twtest_plug_extra": "import twtest_no_such_dependency\n",  # an optional extra that is not installed
    "twtest_plug_c": "import twtest_reg\ntwtest_reg.REG.add('gamma', lambda: 'c')\n",
}


@pytest.fixture
def widgets(tmp_path, monkeypatch):
    for name, code in PLUGINS.items():
        (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", "widgets")
    monkeypatch.setitem(sys.modules, "twtest_reg", types.SimpleNamespace(REG=reg))
    monkeypatch.setitem(catalog.PROVIDERS, "widgets", tuple(PLUGINS))
    monkeypatch.setattr(catalog, "skipped", {})
    monkeypatch.setattr(catalog, "_imported", set())
    yield reg
    for name in PLUGINS:
        sys.modules.pop(name, None)


def test_lookup_imports_only_up_to_the_module_that_registers_the_name(widgets):
    assert widgets.build("alpha") == "a"
    assert "twtest_plug_a" in sys.modules and "twtest_plug_b" not in sys.modules
    assert widgets.build("beta") == "ab"
    assert "twtest_plug_c" not in sys.modules


def test_lookup_during_an_import_sees_what_is_there_without_recursing(widgets):
    widgets.get("beta")
    assert sys.modules["twtest_plug_b"].SEEN == (True, False)


def test_listing_imports_everything_and_reports_a_missing_extra(widgets):
    assert widgets.names() == ["alpha", "beta", "gamma"] and len(widgets) == 3
    assert list(catalog.skipped) == ["twtest_plug_extra"]
    assert widgets.skipped() == {"twtest_plug_extra": "No module named 'twtest_no_such_dependency'"}
    with pytest.raises(UnknownNameError, match=r"unknown widget 'gama'; did you mean 'gamma'"):
        widgets.get("gama")
    with pytest.raises(UnknownNameError, match=r"not loaded: twtest_plug_extra \(No module named"):
        widgets.get("zzz")


def test_membership_triggers_the_lookup_too(widgets):
    assert "gamma" in widgets and "twtest_plug_c" in sys.modules
    assert "omega" not in widgets


def test_a_broken_torchworks_import_is_raised_not_skipped(widgets, tmp_path):
    (tmp_path / "twtest_plug_a.py").write_text("from torchworks.core import no_such_module_here\n")
    with pytest.raises(ImportError, match="no_such_module_here"):
        widgets.get("alpha")
    assert catalog.skipped == {}


def test_a_registry_without_catalog_key_imports_nothing(widgets):
    plain = Registry("widget")
    with pytest.raises(UnknownNameError, match="none registered"):
        plain.get("alpha")
    assert len(plain) == 0 and not any(name in sys.modules for name in PLUGINS)
