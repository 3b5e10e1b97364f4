import numpy as np
import torch

from semfed.encoders.detector_adaptation import adapt_batchnorm
from semfed.encoders.regions import RegionEncoder, build_detector


def test_batchnorm_adaptation_changes_only_bn_statistics_and_unfreezes_mobilenet(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    adapted = adapt_batchnorm("frcnn-mnv3", images, image_size=64, seed=3, batch_size=4)
    initial = build_detector("frcnn-mnv3", 64, seed=3).state_dict()
    changed = {k for k in initial if not torch.equal(initial[k], adapted[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)

    boxes = [np.array([[2, 2, 30, 30], [30, 30, 62, 62]], np.float32)] * 2
    before = RegionEncoder("frcnn-mnv3", 64, 2, seed=3).encode(images[:2], boxes)[0]
    path = tmp_path / "adapted.pt"
    torch.save(adapted, path)
    after = RegionEncoder("frcnn-mnv3", 64, 2, seed=3, weights_path=str(path)).encode(images[:2], boxes)[0]
    spread = lambda f: f[..., :1024].reshape(-1, 1024).std(dim=0).mean().item()  # noqa: E731
    assert spread(before) < 1e-5  # untrained MobileNet: every region gets the same box-head output
    assert spread(after) > 1e-3   # adapted: regions differ
