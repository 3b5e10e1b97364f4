"""Linear probe of frozen region features: how well each detector's region features give each object's
attributes (the scenes': shape, colour, size), for each detector adaptation.

    .venv/bin/python -m experiments.encoder_probe "work-dir='/abs/work'" [--adaptations none,batchnorm,attributes]

For every image encoder the run config's clients use and every adaptation, a multinomial logistic regression
(scikit-learn) per attribute is fitted on the training split's regions (the box-head part of each feature, not
the appended box geometry) and scored on the test split's regions; chance is the most frequent test value.
The prediction heads are scored too ('heads' columns): the most probable value of each attribute's block of the
detector's region-features='predictions' features (heads fitted on every training region, to convergence:
semfed/encoders/prediction_heads.py), on the test regions.
Features come from (and fill) the run's feature cache. Prints a markdown table; --csv writes it too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from flwr.common.config import parse_config_args
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from semfed.config import SemfedConfig, from_overrides
from semfed.config_values import DETECTOR_ADAPTATIONS, encoder_names
from semfed.data.features import labelled_regions, load_dataset
from semfed.data.scenes import OBJECT_ATTRIBUTES


def region_data(cfg: SemfedConfig, scenes, encoder: str, split: str,
                region_features: str = "box-head") -> tuple[np.ndarray, np.ndarray]:
    """(x float32 [n_regions, D]: `encoder`'s region features as `region_features` describes them, without
    the appended box geometry; labels int64 [n_regions, len(OBJECT_ATTRIBUTES)]) of one split. Region j of
    image i is object j of image i (region-source 'boxes')."""
    x, labels = labelled_regions(cfg.replace(region_features=region_features), scenes, encoder, split)
    return x.float().numpy(), labels.numpy()


def fitted_probes(x: np.ndarray, labels: np.ndarray) -> list[Pipeline]:
    """One standardised multinomial logistic regression per attribute, fitted on x [n, D] -> labels [n, A]."""
    return [make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, labels[:, k])
            for k in range(labels.shape[1])]


def probe(cfg: SemfedConfig, encoder: str, max_train_regions: int = 4000, seed: int = 0) -> dict[str, float]:
    """Test accuracy per attribute of a logistic regression on `encoder`'s train-split regions (at most
    max_train_regions, drawn from `seed`), plus the chance level of each."""
    scenes = load_dataset(cfg)
    (x_train, y_train), (x_test, y_test) = (region_data(cfg, scenes, encoder, split) for split in ("train", "test"))
    keep = np.random.default_rng(seed).permutation(len(x_train))[:max_train_regions]
    result = {}
    for k, ((name, _), model) in enumerate(zip(OBJECT_ATTRIBUTES, fitted_probes(x_train[keep], y_train[keep]))):
        result[name] = float((model.predict(x_test) == y_test[:, k]).mean())
        result[f"{name} chance"] = float(np.bincount(y_test[:, k]).max() / len(y_test))
    return result


def block_accuracy(predictions: np.ndarray, labels: np.ndarray,
                   attributes: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, float]:
    """predictions [n, sum(values)]: one block of scores per attribute, in order; labels int [n, len(attributes)].
    The share of rows whose highest score in each block is the labelled value, per attribute."""
    result, lo = {}, 0
    for k, (name, values) in enumerate(attributes):
        result[name] = float((predictions[:, lo:lo + len(values)].argmax(1) == labels[:, k]).mean())
        lo += len(values)
    return result


def head_accuracy(cfg: SemfedConfig, encoder: str) -> dict[str, float]:
    """Test accuracy per attribute of `encoder`'s prediction heads (its 'predictions' features)."""
    x, labels = region_data(cfg, load_dataset(cfg), encoder, "test", region_features="predictions")
    return block_accuracy(x, labels, OBJECT_ATTRIBUTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="?", default="", help="run-config overrides, as flwr run --run-config")
    parser.add_argument("--adaptations", default=",".join(DETECTOR_ADAPTATIONS),
                        help=f"comma-separated, of {list(DETECTOR_ADAPTATIONS)}")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()
    cfg = from_overrides(parse_config_args([args.overrides] if args.overrides else None))
    if cfg.dataset != "scenes" or cfg.region_source != "boxes":
        parser.error("the probe needs the generated scenes' attributes per box: dataset='scenes', region-source='boxes'")
    encoders = sorted({p.image_encoder for p in cfg.client_profiles} & set(encoder_names(lambda e: e.is_detector)))
    rows = []
    for encoder in encoders:
        for adaptation in args.adaptations.split(","):
            adapted = cfg.replace(detector_adaptation=adaptation)
            rows.append({"encoder": encoder, "adaptation": adaptation, **probe(adapted, encoder),
                         **{f"heads {name}": value for name, value in head_accuracy(adapted, encoder).items()}})
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
