"""The YAML configuration file: defaults, per-queue overrides, ConfigError naming each bad field."""

from __future__ import annotations

import textwrap
from zoneinfo import ZoneInfo

import pytest

from streams.config import CallpulseConfig, ConfigError, QueueTargets, load_config, parse_config

CONTRACT_EXAMPLE = """\
timezone: Europe/Berlin          # for the "today" window; UTC if absent
defaults:
  service_level_threshold_seconds: 20
  short_abandon_seconds: 5
  target_service_level_ratio: 0.8
  target_abandon_ratio: 0.05
  target_max_wait_seconds: 120
queues:
  support:
    service_level_threshold_seconds: 30
"""


@pytest.fixture
def write(tmp_path):
    def write(text: str | bytes, name: str = "callpulse.yaml"):
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path
    return write


def test_no_file_means_all_defaults():
    config = load_config(None)

    assert config == CallpulseConfig()
    assert config.timezone == "UTC" and config.zone == ZoneInfo("UTC")
    assert config.targets_for("support") == QueueTargets()
    assert config.defaults.service_level_threshold_seconds == 20
    assert config.defaults.short_abandon_seconds == 5


@pytest.mark.parametrize("text", ["", "# only a comment\n", "null\n"])
def test_empty_file_means_all_defaults(write, text):
    assert load_config(write(text)) == CallpulseConfig()


def test_contract_example_loads(write):
    config = load_config(write(CONTRACT_EXAMPLE))

    assert config.zone == ZoneInfo("Europe/Berlin")
    assert config.targets_for("support").service_level_threshold_seconds == 30
    assert config.targets_for("billing").service_level_threshold_seconds == 20


def test_targets_for_merges_the_queue_override_over_the_defaults():
    config = parse_config({
        "defaults": {"short_abandon_seconds": 3, "target_service_level_ratio": 0.9},
        "queues": {"support": {"service_level_threshold_seconds": 30, "target_abandon_ratio": 0.1}},
    })

    assert config.targets_for("support") == QueueTargets(
        service_level_threshold_seconds=30, short_abandon_seconds=3, target_service_level_ratio=0.9,
        target_abandon_ratio=0.1, target_max_wait_seconds=120)
    assert config.targets_for("unknown") == QueueTargets(short_abandon_seconds=3,
                                                         target_service_level_ratio=0.9)


def test_queue_listed_without_overrides_gets_the_defaults():
    config = parse_config({"defaults": {"target_max_wait_seconds": 60}, "queues": {"support": {}}})

    assert config.targets_for("support") == config.defaults


def test_every_configured_threshold_is_listed_for_the_histogram_edges():
    config = parse_config({
        "defaults": {"service_level_threshold_seconds": 20, "short_abandon_seconds": 5},
        "queues": {"a": {"service_level_threshold_seconds": 30}, "b": {"short_abandon_seconds": 8},
                   "c": {}},
    })

    assert config.service_level_thresholds() == {20, 30}
    assert config.short_abandon_thresholds() == {5, 8}


@pytest.mark.parametrize(("text", "field"), [
    ("colour: blue\n", "colour: unknown key"),
    ("defaults:\n  service_level_treshold_seconds: 20\n",
     "defaults.service_level_treshold_seconds: unknown key"),
    ("queues:\n  support:\n    sla: 30\n", "queues.support.sla: unknown key"),
    ("processing:\n  skew: 10\n", "processing.skew: unknown key"),
    ("defaults:\n  service_level_threshold_seconds: twenty\n",
     "defaults.service_level_threshold_seconds"),
    ("defaults:\n  target_max_wait_seconds: [120]\n", "defaults.target_max_wait_seconds"),
    ("queues:\n  support:\n    short_abandon_seconds: {a: 1}\n",
     "queues.support.short_abandon_seconds"),
    ("defaults:\n  target_service_level_ratio: 1.5\n", "defaults.target_service_level_ratio"),
    ("defaults:\n  target_abandon_ratio: -0.01\n", "defaults.target_abandon_ratio"),
    ("queues:\n  support:\n    target_service_level_ratio: 80\n",
     "queues.support.target_service_level_ratio"),
    ("defaults:\n  target_abandon_ratio: .nan\n", "defaults.target_abandon_ratio"),
    ("defaults:\n  service_level_threshold_seconds: 0\n",
     "defaults.service_level_threshold_seconds"),
    ("defaults:\n  short_abandon_seconds: -1\n", "defaults.short_abandon_seconds"),
    ("processing:\n  contact_expiry_seconds: 0\n", "processing.contact_expiry_seconds"),
    ("timezone: Mars/Olympus_Mons\n", "timezone"),
    ("timezone: 2\n", "timezone"),
    ("defaults: 20\n", "defaults"),
    ("queues: [support, sales]\n", "queues"),
    ("queues:\n  support:\n", "queues.support"),
], ids=lambda x: x.splitlines()[0][:40] if "\n" in x else x)
def test_invalid_file_raises_config_error_naming_the_field(write, text, field):
    path = write(text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert field in str(caught.value)
    assert str(path) in str(caught.value)


def test_config_error_names_every_bad_field():
    with pytest.raises(ConfigError) as caught:
        parse_config({"defaults": {"target_abandon_ratio": 2}, "queues": {"a": {"nope": 1}}})

    message = str(caught.value)
    assert "defaults.target_abandon_ratio" in message and "queues.a.nope: unknown key" in message


@pytest.mark.parametrize("text", ["- support\n- sales\n", "just a string\n", "42\n"])
def test_file_that_is_not_a_mapping_raises_config_error(write, text):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(text))


def test_malformed_yaml_raises_config_error(write):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write("defaults: {service_level_threshold_seconds: 20\n"))


def test_missing_file_raises_config_error(tmp_path):
    path = tmp_path / "missing.yaml"

    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_directory_instead_of_a_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


def test_file_that_is_not_utf8_raises_config_error(write):
    with pytest.raises(ConfigError):
        load_config(write(b"timezone: Europe/Berlin\ndefaults:\n  target_abandon_ratio: 0.0\xff\n"))


@pytest.mark.parametrize("text", [
    "defaults:\n  service_level_threshold_seconds: true\n",
    "queues:\n  support:\n    target_service_level_ratio: yes\n",
])
def test_boolean_where_a_number_belongs_raises_config_error(write, text):
    with pytest.raises(ConfigError):
        load_config(write(text))


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
