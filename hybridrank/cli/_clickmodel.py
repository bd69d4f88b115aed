"""``hybridrank clickmodel``: click models on real logs (held-out fit quality) and the
examination curve of a dataset's own log."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank.cli._common import positive_int, share
from hybridrank.errors import MissingInputError


def cmd_clickmodel_fit(args: argparse.Namespace) -> int:
    from hybridrank.data import DEFAULT_EXAMINATION, read_clara2, read_yandex_sample
    from hybridrank.labels import evaluate_click_model, make_click_model, split_sessions

    root: Path = args.clicklogs
    files = {
        "yandex": root / "yandex-wscd-sample" / "trainSample",
        "clara2": root / "clara2" / "CLARA2SearchLog_beta",
    }
    readers = {"yandex": read_yandex_sample, "clara2": read_clara2}
    present = {name: path for name, path in files.items() if path.is_file()}
    if not present:
        raise MissingInputError(
            f"{root}: holds neither log ({', '.join(str(p) for p in files.values())}); "
            "point --clicklogs at the folder holding yandex-wscd-sample/ and clara2/"
        )
    for name in sorted(set(files) - set(present)):
        print(f"no {name} log at {files[name]}: fitting on the other one only")
    logs = {name: readers[name](path) for name, path in present.items()}
    rows, curves = [], {}
    for log_name, log in logs.items():
        train, test = split_sessions(log, test_size=args.holdout, seed=args.seed)
        for model_name in args.models:
            model = make_click_model(model_name).fit(train)
            quality = evaluate_click_model(model, test)
            rows.append(
                {
                    "log": log_name,
                    "model": model_name,
                    "sessions (train/test)": f"{train['session_id'].nunique()}/{test['session_id'].nunique()}",
                    "log-likelihood": quality["log_likelihood"],
                    "perplexity": quality["perplexity"],
                }
            )
            curves[(log_name, model_name)] = np.asarray(model.examination_)
    print("Fit quality on held-out sessions (higher log-likelihood, lower perplexity is better)")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))
    if ("clara2", "pbm") in curves:
        fitted = curves[("clara2", "pbm")][:10]
        table = pd.DataFrame(
            {
                # As text: tabulate would print a whole-number column beside floats as 1.0.
                "rank": [str(r) for r in range(1, fitted.size + 1)],
                "pbm on clara2": fitted,
                "simulator default": np.asarray(DEFAULT_EXAMINATION[: fitted.size]),
            }
        )
        print("\nPBM examination fitted on CLARA2 against the simulator's default curve")
        print(table.to_markdown(index=False, floatfmt=".3f", colalign=("right",) * 3))
    return 0


def cmd_clickmodel_examination(args: argparse.Namespace) -> int:
    from hybridrank import columns as C
    from hybridrank._atomic import save_figure, write_text
    from hybridrank.data import Dataset
    from hybridrank.errors import DataFormatError
    from hybridrank.labels import harvest_examination
    from hybridrank.pipelines import pbm_examination

    if args.max_position < 2:
        raise DataFormatError(f"--max-position must be >= 2, got {args.max_position}")
    dataset = Dataset.read(args.dataset)
    log = dataset.impressions
    if log is None:
        raise DataFormatError("the dataset has no impression log", path=args.dataset)
    found = harvest_examination(log, args.max_position, path=str(args.dataset))
    shown = log[log[C.POSITION] <= args.max_position]
    ctr = shown.groupby(C.POSITION)[C.CLICK].mean()
    top = float(ctr.get(1, 0.0))
    ctr = ctr / top if top > 0 else ctr * np.nan  # no clicks at position 1: no ratio
    ratios = found.ratios
    adjacent = ratios[ratios["l"] == ratios["k"] + 1].set_index("l")["pairs"]
    table = pd.DataFrame(
        {
            "harvested": found.curve,
            "pbm_em": pbm_examination(log, args.max_position),
            "ctr_by_position": ctr.reindex(found.curve.index),
            # Position pairs whose shared pairs had no click at one of them count 0.
            "pairs_shared_with_above": adjacent.reindex(found.curve.index).fillna(0).astype(int),
        }
    )
    table.index.name = "position"
    title = (
        f"Examination by position (position 1 = 1) of {args.dataset}: harvested from the log's "
        f"interventions, a PBM fitted by EM, and the raw click-through rate"
    )
    text = table.to_markdown(floatfmt=(".0f", ".3f", ".3f", ".3f", ".0f"))
    print(title + "\n")
    print(text)
    print(
        "\nharvested: pairs shown at several positions compare a document with itself "
        "(no relevance model); ctr_by_position mixes relevance into position"
    )
    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "examination.csv", table.to_csv(float_format="%.4f"))
        write_text(out / "examination.md", f"{title}\n\n{text}\n")
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, style in (("harvested", "-o"), ("pbm_em", "--"), ("ctr_by_position", ":")):
            ax.plot(table.index, table[name], style, label=name, markersize=4)
        ax.set_xlabel("shown position")
        ax.set_ylabel("examination (position 1 = 1)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, out / "examination.png")
        print(f"\nwrote {out / 'examination.csv'}, .md and .png")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from hybridrank.labels import CLICK_MODELS

    cm = sub.add_parser("clickmodel", help="click models on real logs")
    cmsub = cm.add_subparsers(dest="clickmodel_command", required=True)
    cmf = cmsub.add_parser("fit", help="fit PBM, DBN and cascade on the Yandex and CLARA2 logs")
    cmf.add_argument(
        "--clicklogs",
        type=Path,
        default=Path("../shared/datasets/clicklogs"),
        help="directory holding yandex-wscd-sample/ and clara2/",
    )
    cmf.add_argument(
        "--models", nargs="+", choices=sorted(CLICK_MODELS), default=["pbm", "cascade", "dbn"]
    )
    cmf.add_argument("--holdout", type=share, default=0.2, help="share of sessions held out")
    cmf.add_argument("--seed", type=positive_int, default=0)
    cmf.set_defaults(func=cmd_clickmodel_fit)
    cme = cmsub.add_parser(
        "examination",
        help="examination by position of a dataset's own log, harvested from its interventions",
    )
    cme.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="a dataset directory with an impression log (`dataset import` or `world build`)",
    )
    cme.add_argument("--max-position", type=int, default=10)
    cme.add_argument("--out", type=Path, default=None, help="write examination.csv|md|png here")
    cme.set_defaults(func=cmd_clickmodel_examination)
