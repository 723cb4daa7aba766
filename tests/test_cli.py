"""The commands otherwise run only by Snakemake's rules (plan, config-page, fit --metrics), and the
exit codes cli.main maps, as in-process CLI contracts (lrscale.cli.main) on the session's tiny runs."""

import json

import pytest

from conftest import cli, read_json
from lrscale import cli as cli_module
from lrscale.errors import Preempted


def adaptive_json(tiny_runs):
    """The tiny runs' config as the rules pass it (--config-json), with a second round to plan."""
    return json.dumps({**tiny_runs.cfg, "sweep": {**tiny_runs.cfg["sweep"], "adaptive": {"rounds": 2}}})


def test_plan_writes_round_two_from_the_metrics_and_keeps_it(tiny_runs, tmp_path):
    out = tmp_path / "rounds" / "round2.json"
    plan_args = ["plan", "--config-json", adaptive_json(tiny_runs), "--round", 2, "--out", out,
                 "--metrics", *tiny_runs.metrics]
    r = cli(*plan_args, check=True)
    plan = read_json(out)
    assert plan["round"] == 2 and [p["lr"] for p in plan["points"]] == pytest.approx([0.0316, 0.1], rel=1e-2)
    assert "round 2: 2 runs planned" in r.stdout and "B=8: extend" in r.stdout
    first = out.read_bytes()
    assert "reusing the plan kept" in cli(*plan_args, check=True).stdout  # a round's plan never changes
    assert out.read_bytes() == first


def test_plan_round_one_is_a_one_line_error(tiny_runs, tmp_path):
    r = cli("plan", "--config-json", adaptive_json(tiny_runs), "--round", 1, "--out", tmp_path / "p.json",
            "--metrics", *tiny_runs.metrics)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--round: 1" in r.stderr
    assert not (tmp_path / "p.json").exists()


def test_config_page_shows_the_resolved_config(tiny_runs, tmp_path):
    cli("config-page", "--config-json", json.dumps(tiny_runs.cfg), "--out", tmp_path / "c.html", check=True)
    page = (tmp_path / "c.html").read_text()
    assert "Config of sweep wb" in page and "batch_sizes: [8]" in page
    assert "final_window: 0.1" in page  # a default the schema filled in


def test_config_json_that_is_not_json_is_a_one_line_error(tmp_path):
    r = cli("config-page", "--config-json", "{sweep", "--out", tmp_path / "c.html")
    assert r.returncode == 2 and r.stderr.strip() == "lrscale config-page: error: --config-json: not valid JSON; " \
                                                      "expected a config mapping"
    assert not (tmp_path / "c.html").exists()


def test_fit_draws_the_curves_of_every_metrics_file(tiny_runs, tmp_path):
    r = cli("fit", tiny_runs.results, "--config", tiny_runs.config, "--metrics", *tiny_runs.metrics,
            "--out", tmp_path, check=True)
    assert "training curves from 2 metrics files" in r.stdout
    for png in ("training_curves", "training_curves_B8"):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000
    assert read_json(tmp_path / "fit.json")["per_batch"][0]["flags"]["insufficient"]  # 2 lrs: said why


@pytest.mark.parametrize("error,code,line", [
    (Preempted("preempted at step 7; rerun to resume"), 143, "lrscale aggregate: preempted at step 7; rerun to resume"),
    (KeyboardInterrupt(), 130, ""),
])
def test_exit_codes_of_an_interrupted_command(monkeypatch, tmp_path, error, code, line):
    def interrupted(args):
        raise error

    monkeypatch.setattr(cli_module, "cmd_aggregate", interrupted)
    r = cli("aggregate", tmp_path / "m.json", "--out", tmp_path / "r.csv")
    assert r.returncode == code and r.stderr.strip() == line
