from pathlib import Path

import pytest
import yaml

from lediflow.pipeline import config
from lediflow.cli import main
from lediflow.core.errors import ConfigError


def test_defaults_fill_every_section():
    params = config.load_params()
    assert params["run"]["name"] == "default"
    assert params["data"]["source"] == "fashion-mnist"
    assert params["data"]["on_bad_image"] == "error"


def test_every_schema_key_has_type_default_description():
    schema = config.load_schema()

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            where = f"{path}.{key}".lstrip(".")
            if "$ref" in sub:  # a shared section, e.g. the trainer settings
                assert "default" in sub, where
                sub = schema["$defs"][sub["$ref"].split("/")[-1]]
            assert "type" in sub, where
            assert "default" in sub, where
            assert sub.get("description"), where
            walk(sub, where)

    walk(schema, "")


def test_files_overlay_in_order_then_set(tmp_path: Path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"run": {"name": "a", "seed": 3}, "data": {"resolution": 64}}))
    b.write_text(yaml.safe_dump({"run": {"name": "b"}}))
    params = config.load_params([a, b], ["data.channels=3"])
    assert params["run"] == {**params["run"], "name": "b", "seed": 3}
    assert params["data"]["resolution"] == 64
    assert params["data"]["channels"] == 3


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["data.resolutoin=32"], "unknown key data.resolutoin"),
        (["bogus.x=1"], "unknown key bogus"),
        (["data.resolution=big"], "data.resolution = 'big'"),
        (["data.resolution=4"], "expected >= 8"),
        (["data.source=mnist"], "one of 'fashion-mnist'"),
        (["run.seed=-1"], "run.seed = -1"),
        (["data.test_fraction=1.0"], "< 1"),
    ],
)
def test_bad_values_name_key_value_and_allowed(sets, needle):
    with pytest.raises(ConfigError) as info:
        config.load_params([], sets)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_set_requires_equals():
    with pytest.raises(ConfigError, match="key.path=value"):
        config.load_params([], ["data.resolution"])


def test_cli_bad_param_exits_2_with_one_line(capsys, tmp_path: Path):
    code = main(["prepare-data", "--set", f"run.results_dir={tmp_path}", "--set", "data.channels=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "data.channels = 2" in err
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_invalid_yaml_file_is_one_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load_params([bad])


@pytest.mark.parametrize("assignment", ["prior.std_scale=.inf", "flow.train.lr=.nan", "run.train_scale=-.inf",
                                        "sample.dopri5_tolerances=[.nan]"])
def test_nan_and_infinity_are_refused_in_one_line(assignment):
    key = assignment.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}(\.0)? = .* expected a finite number"):
        config.load_params([], [assignment])


def test_numbers_are_read_as_numbers_and_whole_floats_as_the_integers_the_schema_wants(tmp_path):
    params = config.load_params([], ["flow.train.lr=1e-4", "data.resolution=32.0", "sample.steps=[1.0, 2]"])
    assert params["flow"]["train"]["lr"] == 1e-4  # YAML 1.1 would read 1e-4 as text
    assert type(params["data"]["resolution"]) is int and params["sample"]["steps"] == [1, 2]
    (tmp_path / "c.yaml").write_text("flow:\n  train: {lr: 3e-4}\n")
    assert config.load_params([tmp_path / "c.yaml"])["flow"]["train"]["lr"] == 3e-4
    with pytest.raises(ConfigError, match="data.resolution = 32.5"):
        config.load_params([], ["data.resolution=32.5"])


def test_the_cli_says_its_version(capsys):
    from lediflow import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"lediflow {__version__}"


def test_the_cli_lists_its_stages_by_group_with_examples_and_hides_internal_helpers(capsys):
    from lediflow.cli import STAGES, build_parser

    help_text = build_parser().format_help()
    assert "pipeline stages" in help_text and "study tools" in help_text
    for name, stage in STAGES.items():
        assert (f"  {name} " in help_text) == (stage.group != "internal"), name
        if stage.group != "internal":
            with pytest.raises(SystemExit):
                main([name, "--help"])
            text = capsys.readouterr().out
            assert stage.help in text and f"example:\n  lediflow {name} " in text, name


@pytest.mark.parametrize("text, message", [
    (b"data:\n  [a, b]: 1\n", "line 2: a key is a list or mapping"),
    (b"data:\n  resolution: 32 \xff\xfe\n", "is not UTF-8 text"),
])
def test_config_files_a_user_can_break_are_refused_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    assert main(["show-params", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_environment_errors_name_the_file_and_the_fix_not_a_bug(monkeypatch, capsys):
    import errno

    from lediflow import cli

    def full_disk(params, args):
        raise OSError(errno.ENOSPC, "No space left on device", "results/x/data/train.npy")

    monkeypatch.setitem(cli.STAGES, "prepare-data", cli.Stage(full_disk, "test", writes_run=False))
    assert main(["prepare-data"]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lediflow: error: cannot use results/x/data/train.npy: No space left on device; the disk is full; "
                   "free space (old runs' samples, ~/.cache) and run again"]


def test_the_traceback_switch_set_to_zero_means_off(monkeypatch, capsys):
    from lediflow import cli

    def broken(params, args):
        raise RuntimeError("a defect")

    monkeypatch.setitem(cli.STAGES, "prepare-data", cli.Stage(broken, "test", writes_run=False))
    monkeypatch.setenv(cli.DEBUG_ENV, "0")
    assert main(["prepare-data"]) == 70
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert main(["prepare-data"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_a_stage_without_config_reads_the_params_yaml_of_its_folder(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("run:\n  name: mine\nprior:\n  channels: [8, 16]\n")
    assert main(["show-params"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["name"] == "mine" and shown["prior"]["channels"] == [8, 16]
