"""What a homework withholds from the crate it is graded with: the manifest
of the copy (withhold.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import withhold  # noqa: E402

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib


def test_the_copys_manifest_has_no_withheld_feature_binary_or_grading_metadata():
    manifest = (withhold.ROOT / "crate" / "Cargo.toml").read_text()
    spec = withhold.withhold_spec()
    for feature in spec:
        stripped = withhold.strip_manifest(manifest, [feature])
        parsed = tomllib.loads(stripped)
        assert feature not in parsed["features"]
        assert feature not in parsed["features"]["default"]
        assert "bin" not in parsed and "example" not in parsed and "dev-dependencies" not in parsed
        assert "grading" not in parsed["package"].get("metadata", {})
        assert parsed["lints"]["rust"]["unexpected_cfgs"] == "allow"
        assert parsed["dependencies"] == tomllib.loads(manifest)["dependencies"]
    kept = tomllib.loads(withhold.strip_manifest(manifest, []))
    assert set(kept["features"]["default"]) == set(tomllib.loads(manifest)["features"]["default"])


def test_a_feature_named_elsewhere_is_refused_not_left_in():
    manifest = '[package]\nname = "x"\n[features]\ndefault = ["a"]\na = []\nb = ["a"]\n'
    with pytest.raises(ValueError, match="still names feature a"):
        withhold.strip_manifest(manifest, ["a"])


def test_every_withheld_file_exists():
    for feature, what in withhold.withhold_spec().items():
        for f in what["files"]:
            assert (withhold.ROOT / "crate" / f).is_file(), f"{feature}: {f}"
