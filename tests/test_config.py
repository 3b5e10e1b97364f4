import pytest

from semfed.config import ConfigError, SemfedConfig, default_run_config, load_config, parse_client_profiles


def test_defaults_validate_and_describe_ten_heterogeneous_clients():
    cfg = SemfedConfig.from_run_config(default_run_config())
    profiles = cfg.client_profiles
    assert len(profiles) == 10
    assert {p.group for p in profiles} >= {"frcnn-r50+minilm", "frcnn-mnv3+minilm", "frcnn-r50", "minilm"}
    assert len({p.local_epochs for p in profiles}) > 1


@pytest.mark.parametrize("override, message", [
    ({"learning-rat": 0.1}, "unknown config key 'learning-rat'"),
    ({"batch-size": 0}, "batch-size: must be an integer >= 1"),
    ({"batch-size": "128"}, "batch-size: expected int"),
    ({"partitioning": "random"}, "partitioning: 'random' is not one of"),
    ({"fraction-train": 1.5}, "fraction-train: must be in"),
    ({"work-dir": "relative/dir"}, "work-dir: must be an absolute path"),
    ({"clients": "frcnn-r50+frcnn-mnv3"}, "clients: unknown or repeated encoder 'frcnn-mnv3'"),
    ({"clients": "resnet:2"}, "clients: unknown or repeated encoder 'resnet'"),
    ({"clients": "minilm:x"}, "clients: bad epochs"),
    ({"frcnn-r50-weights": "/nonexistent/w.pt"}, "frcnn-r50-weights: weights file '/nonexistent/w.pt' does not exist"),
])
def test_bad_config_fails_with_a_message_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        SemfedConfig.from_run_config({**default_run_config(), **override})


def test_int_accepted_for_float_and_profiles_parsed():
    cfg = load_config(learning_rate=1, clients="frcnn-mnv3+minilm:3; minilm ;hf@/models/bert:2")
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    p = cfg.client_profiles
    assert (p[0].image_encoder, p[0].text_encoder, p[0].local_epochs) == ("frcnn-mnv3", "minilm", 3)
    assert (p[1].image_encoder, p[1].text_encoder, p[1].local_epochs) == (None, "minilm", 1)
    assert p[2].text_encoder == "hf@/models/bert" and p[2].group == "hf@/models/bert"
    with pytest.raises(ConfigError, match="absolute directory"):
        parse_client_profiles("hf@models/bert")
