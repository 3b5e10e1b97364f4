"""How much of the oracle a detector's regions carry: each region's attributes decoded from the detector's
features by a linear probe, then given to the adapter in the oracle's layout.

    .venv/bin/python -m experiments.decoded_attributes frcnn-r50 /abs/decoded-work "work-dir='/abs/work'"
    .venv/bin/python -m server.in_process "work-dir='/abs/decoded-work' clients='oracle-image+minilm:4;...'"

One multinomial logistic regression per attribute (experiments.encoder_probe's, fitted on every training
region) predicts each region's shape, colour and size from the detector's box-head features. The decoded
features are oracle-image's (one-hot per attribute, then the box geometry) with the predicted values in
place of the true ones, written under oracle-image's cache keys into a new work dir whose other cache
entries link to the run's, so a run there whose clients name oracle-image trains and is scored on the
decoded attributes. The probe learns from the attribute labels, which the adapter never sees: the RSUM
bounds what the features carry, not what training on captions finds in them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from flwr.common.config import parse_config_args

from experiments.encoder_probe import fitted_probes, region_data
from semfed.config import SemfedConfig, from_overrides
from semfed.config_values import is_image_encoder
from semfed.data.features import encoder_spec, feature_dir, load_dataset, split_features
from semfed.data.scenes import OBJECT_ATTRIBUTES
from semfed.encoders.feature_cache import feature_key

ORACLE = "oracle-image"


def decoded_rows(rows: torch.Tensor, predicted: torch.Tensor,
                 attributes: tuple[tuple[str, tuple[str, ...]], ...]) -> torch.Tensor:
    """rows: oracle region features [n, sum(values) + geometry]; predicted: int64 [n, len(attributes)], each
    region's predicted value index per attribute. Returns rows with each attribute's one-hot block set to
    the predicted value (the geometry columns untouched)."""
    out, column = rows.clone(), 0
    for k, (_, values) in enumerate(attributes):
        block = torch.zeros(len(rows), len(values), dtype=rows.dtype)
        block[torch.arange(len(rows)), predicted[:, k]] = 1
        out[:, column:column + len(values)] = block
        column += len(values)
    return out


def write_decoded(cfg: SemfedConfig, encoder: str, target: Path) -> dict[str, float]:
    """Fill `target` (a new work dir) with links to cfg's scenes, detectors and features, and oracle-image
    features of both splits decoded from `encoder`'s regions. Returns the probe's accuracy per attribute
    and split."""
    scenes = load_dataset(cfg)
    data = {split: region_data(cfg, scenes, encoder, split) for split in ("train", "test")}
    probes = fitted_probes(*data["train"])
    (target / "features").mkdir(parents=True, exist_ok=False)
    for name in ("data", "detectors"):
        (target / name).symlink_to(cfg.root / name, target_is_directory=True)
    for path in feature_dir(cfg).glob("*.pt"):
        (target / "features" / path.name).symlink_to(path)
    spec, accuracy = encoder_spec(cfg, scenes, ORACLE), {}
    for split, (x, labels) in data.items():
        oracle = split_features(cfg, scenes, ORACLE, split)
        if len(x) != int(oracle["mask"].sum()):
            raise ValueError(f"{encoder} has {len(x)} {split} regions, the oracle {int(oracle['mask'].sum())}: "
                             "region j of image i must be object j of image i (region-source 'boxes')")
        predicted = torch.stack([torch.from_numpy(probe.predict(x)) for probe in probes], dim=1)
        for k, (attribute, _) in enumerate(OBJECT_ATTRIBUTES):
            accuracy[f"{split} {attribute}"] = float((predicted[:, k] == labels[:, k]).float().mean())
        feats = oracle["feats"].clone()
        feats[oracle["mask"]] = decoded_rows(feats[oracle["mask"]], predicted, OBJECT_ATTRIBUTES)
        path = target / "features" / f"{feature_key(spec, scenes.fingerprint, split)}.pt"
        path.unlink(missing_ok=True)
        torch.save({"feats": feats, "mask": oracle["mask"].clone()}, path)
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoder", help="the detector whose regions are decoded, e.g. frcnn-r50")
    parser.add_argument("target", type=Path, help="a new work dir for the decoded features")
    parser.add_argument("overrides", nargs="?", default="", help="run-config overrides, as flwr run --run-config")
    args = parser.parse_args()
    cfg = from_overrides(parse_config_args([args.overrides] if args.overrides else None))
    if cfg.dataset != "scenes" or cfg.region_source != "boxes":
        parser.error("decoding needs the generated scenes' attributes per box: dataset='scenes', region-source='boxes'")
    if not is_image_encoder(args.encoder):
        parser.error(f"{args.encoder!r} is not an image encoder")
    if args.target.exists():
        parser.error(f"{args.target} exists: name a new directory")
    for name, value in write_decoded(cfg, args.encoder, args.target.resolve()).items():
        print(f"probe accuracy, {name}: {value:.3f}")
    print(f"decoded features in {args.target}: run with work-dir='{args.target.resolve()}' and oracle-image clients")


if __name__ == "__main__":
    main()
