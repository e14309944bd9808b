"""The quantizer registry: registration, lookup, patterns, lazy built-ins and the three plugin routes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from _plugin_helpers import TOY_DIST, isolated_registry, write_toy_module

from vqbench.quantizers import (
    PluginLoadError,
    UnknownQuantizerError,
    create_quantizer,
    get_quantizer_spec,
    is_quantizer,
    list_quantizers,
    plugin_errors,
    register_quantizer,
)
from vqbench.quantizers._describe import describe_quantizers

BUILTINS = {
    "fsq",
    "fsq-upstream",
    "vq",
    "vq-cosine",
    "vq-rotation",
    "lfq",
    "bsq",
    "residual-vq",
    "residual-fsq",
    "residual-lfq",
    "simvq",
    "latent-quantize",
}


@pytest.fixture
def registry():
    with isolated_registry() as reg:
        yield reg


# -- lookup -----------------------------------------------------------------------------------


def test_builtins_are_registered_as_defaults():
    assert BUILTINS <= set(list_quantizers())
    assert BUILTINS <= set(list_quantizers(default_only=True))
    assert list_quantizers() == sorted(list_quantizers())
    spec = get_quantizer_spec("vq")
    assert (spec.family, spec.source, spec.default) == ("vq", "vector-quantize-pytorch", True)
    assert "learned-codebook" in spec.tags
    assert "implicit-codebook" in get_quantizer_spec("fsq").tags


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("fsq*", ["fsq", "fsq-upstream"]),
        ("residual-*", ["residual-fsq", "residual-lfq", "residual-vq"]),
        ("fsq*,vq", ["fsq", "fsq-upstream", "vq"]),
        (" vq , bsq ", ["bsq", "vq"]),
        (["lfq", "*-cosine"], ["lfq", "vq-cosine"]),
        ("?sq", ["bsq", "fsq"]),
        ("no-such-*", []),
    ],
)
def test_glob_patterns(pattern, expected):
    assert list_quantizers(pattern) == expected


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("fsk", "'fsq'"), ("vq-cosin", "'vq-cosine'"), ("simvqq", "'simvq'")]
)
def test_unknown_name_lists_close_matches(typo, suggestion):
    with pytest.raises(UnknownQuantizerError) as err:
        create_quantizer(typo)
    message = str(err.value)
    assert repr(typo) in message and suggestion in message and "did you mean" in message
    assert isinstance(err.value, KeyError)


def test_unknown_name_without_close_match_lists_registered():
    with pytest.raises(UnknownQuantizerError, match="Registered: .*latent-quantize"):
        get_quantizer_spec("zzzzzzzz")


def test_config_is_passed_and_bad_config_names_the_quantizer():
    quantizer = create_quantizer("vq", codebook_size=64, dim=12)
    assert (quantizer.codebook_size, quantizer.dim) == (64, 12)
    with pytest.raises(TypeError, match="'vq'.*no_such_option"):
        create_quantizer("vq", no_such_option=1)


# -- registration -----------------------------------------------------------------------------


def test_register_decorator_and_create(registry):
    @register_quantizer("toy-identity-sign", family="toy", tags=("implicit-codebook",))
    class ToySign(torch.nn.Module):
        """Sign quantizer, registered by decorator."""

        def __init__(self, dim=None, codebook_size=None):
            super().__init__()
            self.dim, self.codebook_size, self.num_codebooks = dim or 2, 4, 1

        bits_per_token = 2.0

        def indices_to_codes(self, indices):
            raise NotImplementedError

    assert "toy-identity-sign" in list_quantizers("toy-*")
    spec = get_quantizer_spec("toy-identity-sign")
    assert (spec.family, spec.source, spec.tags) == ("toy", "vqbench", ("implicit-codebook",))
    assert spec.description == "Sign quantizer, registered by decorator."
    assert spec.default is False and "toy-identity-sign" not in list_quantizers(default_only=True)
    built = create_quantizer("toy-identity-sign", dim=5)
    assert isinstance(built, ToySign) and built.dim == 5 and is_quantizer(built)


def test_register_lazy_string_target_imports_on_create(registry, tmp_path):
    path = write_toy_module(tmp_path / "lazy_toy.py")
    register_quantizer("toy-lazy", f"{path}:SignQuantizer", family="toy")
    assert not any("lazy_toy" in name for name in sys.modules)  # not imported by registering
    quantizer = create_quantizer("toy-lazy", dim=4)
    assert quantizer.codebook_size == 16


def test_duplicate_name_raises_and_same_target_is_idempotent(registry):
    def factory(dim=None, codebook_size=None):
        return create_quantizer("fsq-upstream")

    register_quantizer("toy-dup", factory)
    register_quantizer("toy-dup", factory)  # the same object again (a module imported twice): fine
    with pytest.raises(ValueError, match="'toy-dup' is already registered"):
        register_quantizer("toy-dup", lambda **kw: None)
    with pytest.raises(ValueError, match="'vq' is already registered"):
        register_quantizer("vq", "somewhere:else")


@pytest.mark.parametrize("bad", ["", "two words", "pkg:Name", "fsq*", 3])
def test_invalid_names_are_rejected(bad, registry):
    with pytest.raises(ValueError, match="quantizer name must be"):
        register_quantizer(bad, "a.b:C")


def test_factory_that_does_not_follow_the_protocol(registry, tmp_path):
    path = write_toy_module(tmp_path / "not_protocol.py")
    register_quantizer("toy-not-protocol", f"{path}:not_a_quantizer")
    with pytest.raises(TypeError, match="does not follow the protocol"):
        create_quantizer("toy-not-protocol")


# -- lazy built-ins ---------------------------------------------------------------------------


def test_builtins_are_not_imported_until_built():
    code = textwrap.dedent(
        """
        import sys
        import vqbench
        assert "torch" not in sys.modules, "import vqbench imported torch"
        from vqbench.quantizers import create_quantizer, list_quantizers, get_quantizer_spec
        names = list_quantizers()
        get_quantizer_spec("vq")
        lazy = ("vector_quantize_pytorch", "vqbench.quantizers.baselines", "vqbench.quantizers.fsq.module")
        heavy = [m for m in lazy if m in sys.modules]
        assert not heavy, heavy
        create_quantizer("vq")
        assert "vector_quantize_pytorch" in sys.modules and "vqbench.quantizers.fsq.module" not in sys.modules
        print("ok", len(names))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


# -- plugins ----------------------------------------------------------------------------------


def test_file_path_plugin_loads(tmp_path):
    path = write_toy_module(tmp_path / "my_quantizer.py")
    with isolated_registry():
        quantizer = create_quantizer(f"{path}:SignQuantizer", dim=4)
        spec = get_quantizer_spec(f"{path}:SignQuantizer")
    assert is_quantizer(quantizer) and quantizer.codebook_size == 16
    assert spec.family == "plugin" and spec.source == str(path)
    x = torch.tensor([[0.5, -1.0, 2.0, -0.1]])
    out = quantizer(x)
    assert out.codes.tolist() == [[1.0, -1.0, 1.0, -1.0]] and out.indices.tolist() == [5]


def test_module_reference_loads():
    quantizer = create_quantizer("vqbench.quantizers.baselines:vector_quantize", codebook_size=32)
    assert quantizer.codebook_size == 32


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("{dir}/missing.py:Name", "could not import"),
        ("{dir}/my_quantizer.py:NoSuchName", "has no attribute 'NoSuchName'"),
        ("no_such_module_for_vqbench:Name", "could not import 'no_such_module_for_vqbench'"),
    ],
)
def test_bad_references_are_reported(tmp_path, ref, message):
    write_toy_module(tmp_path / "my_quantizer.py")
    with isolated_registry(), pytest.raises(PluginLoadError, match=message):
        create_quantizer(ref.format(dir=tmp_path))


def test_entry_point_plugin_is_listed_and_built(toy_site):
    assert {"toy-sign", "toy-broken"} <= set(list_quantizers())
    assert list_quantizers("toy-*") == ["toy-broken", "toy-sign"]
    spec = get_quantizer_spec("toy-sign")
    assert (spec.source, spec.family, spec.default) == (TOY_DIST, "plugin", False)
    quantizer = create_quantizer("toy-sign", dim=2)
    assert quantizer.codebook_size == 4 and type(quantizer).__name__ == "SignQuantizer"


def test_broken_plugin_is_reported_by_name_and_the_rest_works(toy_site):
    with pytest.raises(PluginLoadError) as err:
        create_quantizer("toy-broken")
    message = str(err.value)
    assert "toy-broken" in message and "needs a library that is not installed" in message
    assert create_quantizer("toy-sign").codebook_size == 8
    assert create_quantizer("fsq-upstream").codebook_size == 1000
    rows = {info.name: info for info in describe_quantizers("toy-*,fsq-upstream")}
    assert rows["toy-broken"].error and "not installed" in rows["toy-broken"].error
    assert rows["toy-sign"].error is None and rows["toy-sign"].round_trip == "exact"
    assert rows["fsq-upstream"].error is None


def test_entry_point_with_a_taken_name_is_a_plugin_error(toy_site):
    errors = plugin_errors()
    assert "vq" in errors and "already registered" in errors["vq"]
    assert get_quantizer_spec("vq").source == "vector-quantize-pytorch"  # the built-in stays
    rows = [info for info in describe_quantizers("vq", measure=False) if info.error]
    assert [(r.name, r.source) for r in rows] == [("vq", "entry point")]
