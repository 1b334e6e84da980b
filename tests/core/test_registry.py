import pytest

from torchworks.core.errors import DuplicateNameError, UnknownNameError
from torchworks.core.registry import Registry


@pytest.fixture
def reg():
    r = Registry("model")

    @r.register()
    def lama_fourier(width=8):
        return ("lama", width)

    @r.register("relama_small", paper="CBAM")
    def _relama(width=4):
        return ("relama", width)

    r.add("big_lama", lambda: "big")
    return r


def test_build_passes_overrides(reg):
    assert reg.build("lama_fourier") == ("lama", 8)
    assert reg.build("lama_fourier", width=3) == ("lama", 3)
    assert reg.meta("relama_small") == {"paper": "CBAM"}


def test_duplicate_name_raises_and_names_the_first(reg):
    with pytest.raises(DuplicateNameError, match="'lama_fourier' is already registered.*lama_fourier"):
        reg.add("lama_fourier", lambda: None)
    assert reg.build("lama_fourier") == ("lama", 8)  # the first entry survives


def test_unknown_name_lists_close_matches(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("lama_fourer")
    msg = str(info.value)
    assert msg.startswith("unknown model 'lama_fourer'") and "'lama_fourier'" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_unknown_name_without_matches_lists_known(reg):
    with pytest.raises(UnknownNameError, match="known: big_lama, lama_fourier, relama_small"):
        reg.get("zzz")


def test_names_by_glob_and_substring(reg):
    assert reg.names() == ["big_lama", "lama_fourier", "relama_small"]
    assert reg.names("*lama*") == ["big_lama", "lama_fourier", "relama_small"]
    assert reg.names("relama_*") == ["relama_small"]
    assert reg.names("lama_") == ["lama_fourier", "relama_small"]  # no wildcard: substring match
    assert reg.names("nothing*") == []
    assert "big_lama" in reg and len(reg) == 3
