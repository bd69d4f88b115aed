"""``hybridrank clickmodel fit``: click models on real logs, held-out fit quality."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def cmd_clickmodel_fit(args: argparse.Namespace) -> int:
    from hybridrank.data import DEFAULT_EXAMINATION, read_clara2, read_yandex_sample
    from hybridrank.labels import evaluate_click_model, make_click_model, split_sessions

    root = args.clicklogs
    logs = {
        "yandex": read_yandex_sample(root / "yandex-wscd-sample" / "trainSample"),
        "clara2": read_clara2(root / "clara2" / "CLARA2SearchLog_beta"),
    }
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
                "rank": np.arange(1, fitted.size + 1),
                "pbm on clara2": fitted,
                "simulator default": np.asarray(DEFAULT_EXAMINATION[: fitted.size]),
            }
        )
        print("\nPBM examination fitted on CLARA2 against the simulator's default curve")
        print(table.to_markdown(index=False, floatfmt=("d", ".3f", ".3f")))
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
    cmf.add_argument("--holdout", type=float, default=0.2, help="share of sessions held out")
    cmf.add_argument("--seed", type=int, default=0)
    cmf.set_defaults(func=cmd_clickmodel_fit)
