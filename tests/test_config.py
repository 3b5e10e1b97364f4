import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semfed.config import (
    MAX_SEED,
    ConfigError,
    SemfedConfig,
    default_run_config,
    from_overrides,
    load_config,
    parse_client_profiles,
)
from semfed.seeds import client_round_seed

ROOT = Path(__file__).resolve().parent.parent


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


def test_int_accepted_for_float_and_profiles_parsed(tmp_path):
    bert = tmp_path / "models" / "bert"
    bert.mkdir(parents=True)
    (bert / "config.json").write_text("{}")
    cfg = load_config(learning_rate=1, clients=f"frcnn-mnv3+minilm:3; minilm ;hf@{bert}:2")
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    p = cfg.client_profiles
    assert (p[0].image_encoder, p[0].text_encoder, p[0].local_epochs) == ("frcnn-mnv3", "minilm", 3)
    assert (p[1].image_encoder, p[1].text_encoder, p[1].local_epochs) == (None, "minilm", 1)
    assert p[2].text_encoder == f"hf@{bert}" and p[2].group == f"hf@{bert}"
    with pytest.raises(ConfigError, match="absolute directory"):
        parse_client_profiles("hf@models/bert")


# The config gaps: each refused before the run starts, with one message naming the key.
@pytest.mark.parametrize("override, message", [
    ({"clients": "minilm:2;hf@/nonexistent:1"}, "clients: 'hf@/nonexistent' is not a local model folder"),
    ({"skb-encoder": "hf@/nonexistent"}, "skb-encoder: 'hf@/nonexistent' is not a local model folder"),
    ({"clients": "frcnn-r50+hf@models/bert"}, "clients: 'hf@models/bert' must name an absolute directory"),
    ({"skb-encoder": "hf@models/bert"}, "skb-encoder: 'hf@models/bert' must name an absolute directory"),
    ({"clients": "minilm:2;minilm:3"}, "clients: no client has a image encoder"),
    ({"clients": "frcnn-r50:2;frcnn-mnv3:3"}, "clients: no client has a text encoder"),
    ({"triplet-margin": math.nan}, "triplet-margin: must be a finite number, got nan"),
    ({"skb-reg-weight": math.inf}, "skb-reg-weight: must be a finite number, got inf"),
    ({"learning-rate": math.inf}, "learning-rate: must be a finite number, got inf"),
    ({"round-timeout-s": -math.inf}, "round-timeout-s: must be a finite number, got -inf"),  # any float key
    ({"jscc-snr-set": "1,nan,7"}, "jscc-snr-set: SNRs must be finite numbers in dB, got '1,nan,7'"),
    ({"jscc-eval-snrs": "inf"}, "jscc-eval-snrs: SNRs must be finite numbers in dB, got 'inf'"),
    ({"seed": MAX_SEED + 1}, "seed: must be >= 0 and <= 4294967295 (2**32 - 1), got 4294967296"),
    ({"poison-clients": "3-1"}, "poison-clients: range '3-1' in '3-1' runs backwards; write it low-high, e.g. '1-3'"),
    ({"label-noise": "mild:0.2:4-0"}, "label-noise: range '4-0' in 'mild:0.2:4-0' runs backwards"),
    ({"stop-after-round": 13}, "stop-after-round: must be in 0..12 (0 = never; at most num-server-rounds), got 13"),
    ({"num-server-round": 3}, "unknown config key 'num-server-round'; did you mean 'num-server-rounds'?"),
])
def test_config_gap_is_refused_with_one_message_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        from_overrides(override)
    assert str(error.value).startswith(message)


def test_a_text_only_jscc_federation_is_not_refused_for_missing_image_encoders():
    assert from_overrides({"task": "jscc", "clients": "minilm:2"}).task == "jscc"  # jscc ignores clients


def test_the_largest_seed_gives_derived_seeds_torch_and_numpy_accept():
    cfg = from_overrides({"seed": MAX_SEED, "num-server-rounds": 1000})
    for seed in (cfg.seed, client_round_seed(cfg.seed, cfg.num_server_rounds, len(cfg.client_profiles) - 1)):
        torch.Generator().manual_seed(seed)
        np.random.default_rng(seed)
    np.random.RandomState(cfg.seed)  # the legacy generator's bound is the seed bound
    with pytest.raises(ValueError, match="Overflow"):  # TOML's largest int, 2**63 - 1, would overflow
        torch.Generator().manual_seed((2**63 - 1) * 1_000_003)


def test_check_environment_refuses_a_work_dir_that_cannot_be_written(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("")
    with pytest.raises(ConfigError, match=f"work-dir: '{afile}/work' cannot be a folder: {afile} is a file"):
        load_config(work_dir=str(afile / "work")).check_environment()
    with pytest.raises(ConfigError, match="work-dir: '/proc/semfed-work' is not writable"):
        load_config(work_dir="/proc/semfed-work").check_environment()
    fresh = tmp_path / "new" / "work"
    load_config(work_dir=str(fresh)).check_environment()
    assert list(tmp_path.iterdir()) == [afile]  # the probe left nothing behind, made no folder


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-555 folder")
def test_check_environment_refuses_a_read_only_work_dir(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="work-dir: .* is not writable"):
            load_config(work_dir=str(tmp_path)).check_environment()
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_check_environment_refuses_cuda_without_a_gpu(tmp_path):
    cfg = load_config(work_dir=str(tmp_path), device="cuda")  # the values alone are fine
    with pytest.raises(ConfigError, match="device: 'cuda' but torch finds no GPU on this machine"):
        cfg.check_environment()


def test_check_environment_refuses_jscc_crops_larger_than_every_image(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for name, size in {"a.png": (120, 80), "b.png": (64, 200)}.items():  # shorter sides 80 and 64 px
        Image.new("RGB", size).save(images / name)
    fits = load_config(work_dir=str(tmp_path), task="jscc", jscc_images=str(images), jscc_crop_size=80)
    fits.check_environment()
    with pytest.raises(ConfigError, match=f"jscc-crop-size: 84 px crops fit no image of jscc-images \\({images}\\): "
                                          "the largest shorter side is 80 px"):
        fits.replace(jscc_crop_size=84).check_environment()
    with pytest.raises(ConfigError, match="jscc-crop-size: 100000 px crops fit no image of jscc-images "
                                          "\\(the bundled default\\): the largest shorter side is 1411 px"):
        load_config(work_dir=str(tmp_path), task="jscc", jscc_crop_size=100000).check_environment()
    # a 120 x 80 image (PIL: width x height) is 80 rows: holdout 0.25 keeps 60 rows and holds out 20;
    # the 64 x 200 one keeps 150 rows (shorter side 64) and holds out 50 (shorter side 50)
    held = fits.replace(jscc_crop_size=48, jscc_holdout=0.25)
    held.check_environment()
    with pytest.raises(ConfigError, match=r"jscc-crop-size: 52 px crops fit the held-out bands \(jscc-holdout = 0.25\) "
                                          "of jscc-eval-images .*: the largest shorter side is 50 px"):
        held.replace(jscc_crop_size=52).check_environment()
    with pytest.raises(ConfigError, match=r"jscc-crop-size: 68 px crops fit the rows not held out \(jscc-holdout = 0.25\) "
                                          "of jscc-images .*: the largest shorter side is 64 px"):
        held.replace(jscc_crop_size=68).check_environment()
    # layout 'tiles': 32 px tiles, 2 x 3 and 6 x 2 of them: round(0.25 * 6) = 2 held out of each image;
    # 48 px tiles, 1 x 2 and 4 x 1: round(0.25 * 2) = 0, refused
    tiled = fits.replace(jscc_crop_size=32, jscc_holdout=0.25, jscc_holdout_layout="tiles")
    tiled.check_environment()
    with pytest.raises(ConfigError, match="jscc-holdout: 0.25 of the fewest 48 px tiles of an image of jscc-eval-images "
                                          ".* rounds to no tile"):
        tiled.replace(jscc_crop_size=48).check_environment()
    with pytest.raises(ConfigError, match="jscc-holdout-layout: 'columns' is not one of \\('rows', 'tiles'\\)"):
        tiled.replace(jscc_holdout_layout="columns").check_environment()


def check_config(*args: str) -> subprocess.CompletedProcess:
    """scripts/check_config.py, as scripts/flwr_run.sh and a user run it."""
    return subprocess.run([sys.executable, str(ROOT / "scripts/check_config.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_check_config_names_the_closest_key_for_a_typo_in_one_line(tmp_path):
    result = check_config(f"work-dir='{tmp_path}' num-server-round=3")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "semfed config: unknown config key 'num-server-round'; did you mean 'num-server-rounds'?\n"


@pytest.mark.parametrize("overrides, line", [
    ("num-server-rounds=-1", "num-server-rounds: must be an integer >= 1, got -1"),
    ("learning-rate=nan", "learning-rate: must be a finite number, got nan"),
    ("work-dir='/proc/semfed-work'", "work-dir: '/proc/semfed-work' is not writable (/proc: No such file or directory)"),
    ("seed=abc", "The provided configuration string is in an invalid format. The correct format should be, e.g., "
                 "'key1=123 key2=false key3=\"string\"', where values must be of type bool, int, string, or float. "
                 "Ensure proper formatting with space-separated key-value pairs."),  # Flower's parser's own message
])
def test_check_config_reports_a_bad_value_in_one_line_without_a_traceback(overrides, line):
    result = check_config(overrides)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"semfed config: {line}\n")


def test_check_config_accepts_a_good_config_and_counts_its_supernodes(tmp_path):
    result = check_config(f"work-dir='{tmp_path}' num-server-rounds=3 seed=1")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "semfed config: ok (3 override(s); task retrieval, 10 SuperNodes)\n", "")
    two = check_config("--supernodes", f"work-dir='{tmp_path}' clients='minilm;frcnn-r50+minilm'")
    assert (two.returncode, two.stdout) == (0, "2\n")
    jscc = check_config("--supernodes", "--values-only", "task='jscc' jscc-decoders='conv;vgg;resnet'")
    assert (jscc.returncode, jscc.stdout) == (0, "3\n")
    with_machine = check_config(f"work-dir='{tmp_path / 'a' / 'b'}' device='cpu'")
    assert with_machine.returncode == 0 and not (tmp_path / "a").exists()  # the probe made no folder


def test_check_config_imports_no_torch_for_a_retrieval_config(tmp_path):
    probe = ("import importlib.util, sys\n"
             f"spec = importlib.util.spec_from_file_location('check_config', {str(ROOT / 'scripts/check_config.py')!r})\n"
             "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
             f"code = module.main([\"work-dir='{tmp_path}' num-server-rounds=3\"])\n"
             "print(code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "0 False", result.stderr


def test_flwr_run_script_refuses_a_typo_before_submitting_anything(tmp_path):
    """The issue's new user: `scripts/main.sh "num-server-round=3"` used to end in Flower's '[code: 15]
    Invalid run configuration.' naming no key."""
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "scripts/flwr_run.sh"), f"work-dir='{tmp_path}' num-server-round=3"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "semfed config: unknown config key 'num-server-round'; did you mean 'num-server-rounds'?\n"
    assert not (tmp_path / "flwr-home").exists()  # no `flwr` command ran: no SuperLink, no run


STAND_IN_SUPERLINK = """#!{python}
# answers 200 on /health at --port until flwr_run.sh's cleanup stops it
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


NO_GPU = "() { return 9; }"  # nvidia-smi's stand-in on a machine without a driver
ONE_GPU = "() { echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'; }"


@pytest.mark.parametrize("run_config, federation, nvidia_smi, visible, sent", [
    ("clients='minilm;frcnn-r50+minilm;frcnn-mnv3'", None, NO_GPU, None, "num-supernodes=3 client-resources-num-cpus=1"),
    ("task='jscc' jscc-decoders='conv;vgg'", "client-resources-num-cpus=2", NO_GPU, None,
     "num-supernodes=2 client-resources-num-cpus=2"),
    ("clients='minilm;frcnn-r50'", "num-supernodes=5", NO_GPU, None, "num-supernodes=5"),  # the caller's count is kept
    ("clients='minilm;frcnn-r50'", None, ONE_GPU, None,  # five virtual clients share the GPU
     "num-supernodes=2 client-resources-num-cpus=1 client-resources-num-gpus=0.2"),
    ("clients='minilm;frcnn-r50'", None, ONE_GPU, "", "num-supernodes=2 client-resources-num-cpus=1"),  # hidden
])
def test_flwr_run_script_takes_the_supernode_count_from_the_run_config(tmp_path, run_config, federation, nvidia_smi,
                                                                        visible, sent):
    """`flwr` replaced by an exported bash function (it wins over PATH, which env.sh sets) that records what
    flwr_run.sh submits and starts no run; `flower-superlink` by a stand-in that only answers /health;
    `nvidia-smi` by one that lists a GPU or fails (CUDA_VISIBLE_DEVICES='' hides the GPU)."""
    record = tmp_path / "args"
    stand_in = tmp_path / "flower-superlink"  # the name flwr_run.sh's cleanup looks for
    stand_in.write_text(STAND_IN_SUPERLINK.format(python=sys.executable))
    stand_in.chmod(0o755)
    # port: five digits, so that the script's cleanup patterns (pkill -f '...--port P') match no other run
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": "59997",
           "BASH_FUNC_flwr%%": f"() {{ printf '%s\\n' \"$@\" > {record}; echo '{{}}'; }}",
           "BASH_FUNC_flower-superlink%%": f"() {{ {stand_in} \"$@\"; }}", "BASH_FUNC_nvidia-smi%%": nvidia_smi,
           "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    command = ["bash", str(ROOT / "scripts/flwr_run.sh"), f"work-dir='{tmp_path}' device='cpu' {run_config}"]
    result = subprocess.run(command + ([federation] if federation else []), cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "flwr run did not start a run: {}" in result.stderr, result.stderr[-2000:]
    args = record.read_text().splitlines()
    assert args[args.index("--federation-config") + 1] == sent


def test_a_count_prefix_repeats_a_profile_in_order():
    profiles = parse_client_profiles("3x minilm; frcnn-r50:2 ;2x frcnn-mnv3+minilm:4")
    assert [p.group for p in profiles] == ["minilm"] * 3 + ["frcnn-r50"] + ["frcnn-mnv3+minilm"] * 2
    assert [p.local_epochs for p in profiles] == [1, 1, 1, 2, 4, 4]
    with pytest.raises(ConfigError, match="a count must be >= 1 in '0x minilm'"):
        parse_client_profiles("0x minilm")
    with pytest.raises(ConfigError, match="unknown or repeated encoder 'x minilm'"):
        parse_client_profiles("x minilm")


@pytest.mark.parametrize("partitioning, scenes, message", [
    ("iid", 10, "11 clients need at least 11 training images under partitioning='iid', and scenes-train is 10"),
    ("dirichlet", 21, "11 clients need at least 22 training images under partitioning='dirichlet'"),
])
def test_a_federation_where_some_client_gets_no_data_is_refused(partitioning, scenes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(clients="10x minilm;frcnn-r50", partitioning=partitioning, scenes_train=scenes)
    load_config(clients="10x minilm;frcnn-r50", partitioning=partitioning, scenes_train=scenes + 1)
