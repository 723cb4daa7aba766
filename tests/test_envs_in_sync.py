"""The conda env files pin exactly what pyproject.toml pins (conda itself is not on these machines)."""

import tomllib

import yaml

from conftest import REPO


def _pins(reqs):
    out = {}
    for r in reqs:
        name, _, version = r.partition("==")
        out[name.strip().lower()] = version.strip()
    return out


def test_conda_envs_match_pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = _pins(project["dependencies"])
    assert all(pinned.values()), "every runtime dependency is pinned with =="
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        assert _pins(pip) == pinned, env.name


def test_every_rule_names_an_env_that_exists():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        for line in text.splitlines():
            if line.strip().startswith('"../../envs/'):
                assert (smk.parent / line.strip().strip('"')).resolve().is_file(), line


def test_config_readme_documents_every_key():
    schema = yaml.safe_load((REPO / "src/lrscale/schemas/config.schema.yaml").read_text())  # the one copy
    readme = (REPO / "config" / "README.md").read_text()

    def walk(props, prefix):
        for k, v in props.items():
            assert "description" in v and ("default" in v), f"{prefix}{k} lacks description/default"
            assert f"`{prefix}{k}`" in readme, f"{prefix}{k} missing from config/README.md"
            if v.get("type") == "object" and "properties" in v:
                walk(v["properties"], f"{prefix}{k}.")

    walk(schema["properties"], "")


def test_default_config_has_a_comment_on_every_key():
    for line in (REPO / "config" / "config.yaml").read_text().splitlines():
        if line.strip() and not line.strip().startswith("#") and ":" in line and not line.rstrip().endswith(":"):
            assert "#" in line, f"uncommented key: {line}"


def test_version_has_one_source():
    import importlib.metadata

    import lrscale

    assert 'dynamic = ["version"]' in (REPO / "pyproject.toml").read_text()
    assert importlib.metadata.version("lrscale") == lrscale.__version__
