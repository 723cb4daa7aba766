"""The fit's outputs on the golden inputs (tests/golden/build.py) stay as they were written:
best_per_batch.csv and report.md byte for byte, fit.json key for key up to 1e-12 (keys may be
added, never renamed or dropped). A refactor of the analysis must pass this unchanged."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import build  # noqa: E402

pytestmark = pytest.mark.slow  # a fit with the bootstrap and every plot per case: about 6 s each


def fit_schema_validator():
    import jsonschema

    from lrscale import config

    return jsonschema.Draft202012Validator(config.load_schema("fit.schema.yaml"))


def test_the_fit_schema_documents_every_key_and_rejects_an_undocumented_one():
    """fit.json's keys are a contract (src/lrscale/schemas/fit.schema.yaml): every property says what
    it is, and a key the schema does not know fails validation (a new key must be documented)."""
    import jsonschema

    schema = fit_schema_validator().schema
    rows = schema["properties"]["per_batch"]["items"]["properties"]
    for props in (schema["properties"], rows):
        assert all("description" in v or "$ref" in v for v in props.values())
    golden = json.loads((build.HERE / "demo" / "expected" / "fit.json").read_text())
    fit_schema_validator().validate(golden)
    with pytest.raises(jsonschema.ValidationError):
        fit_schema_validator().validate({**golden, "undocumented": 1})
    with pytest.raises(jsonschema.ValidationError):
        fit_schema_validator().validate({**golden, "per_batch": [{**golden["per_batch"][0], "lr_opt_x": 1}]})


def differences(expected, got, where="fit.json") -> list:
    """Where `got` departs from `expected`: a value changed (floats beyond 1e-12 relative) or a key
    dropped; keys only in `got` are additions and allowed."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{where}: was an object, now {type(got).__name__}"]
        out = [f"{where}.{k}: dropped" for k in expected if k not in got]
        return out + [d for k in expected if k in got for d in differences(expected[k], got[k], f"{where}.{k}")]
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [f"{where}: was a list of {len(expected)}, now {got!r:.80}"]
        return [d for i, (e, g) in enumerate(zip(expected, got)) for d in differences(e, g, f"{where}[{i}]")]
    if isinstance(expected, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if math.isclose(expected, got, rel_tol=1e-12, abs_tol=1e-15) or (math.isnan(expected) and math.isnan(got)):
            return []
    return [] if expected == got and type(expected) is type(got) else [f"{where}: {expected!r} -> {got!r}"]


def test_differences_sees_a_change_and_allows_an_added_key():
    assert differences({"a": 1.0, "b": [1, 2]}, {"a": 1.0 + 1e-14, "b": [1, 2], "c": 3}) == []
    assert differences({"a": 1.0}, {"a": 1.001}) == ["fit.json.a: 1.0 -> 1.001"]
    assert differences({"a": 1, "b": 2}, {"a": 1}) == ["fit.json.b: dropped"]
    assert differences({"a": [1]}, {"a": [1, 2]}) == ["fit.json.a: was a list of 1, now [1, 2]"]
    assert differences({"a": 1}, {"a": 1.0}) == ["fit.json.a: 1 -> 1.0"]  # an int must stay an int


@pytest.mark.parametrize("case", build.CASES)
def test_fit_outputs_match_the_golden_files(case, tmp_path, monkeypatch):
    monkeypatch.chdir(build.REPO)  # the input's path, as fit.json and report.md name it
    build.fit_case(case, tmp_path)
    expected = build.HERE / case / "expected"
    want, got = (json.loads((d / "fit.json").read_text()) for d in (expected, tmp_path))
    assert differences(want, got) == []
    fit_schema_validator().validate(got)
    for name in ("best_per_batch.csv", "report.md"):
        assert (tmp_path / name).read_bytes() == (expected / name).read_bytes(), f"{case}: {name} changed"
