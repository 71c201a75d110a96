"""Real-recordings development benchmark: a recipe on the MIMII fan folds, every backend, mean ± std over folds.

Source domain = the MIMII fan id_00 sample, target domain = the MIMII "extra" fan sample (`_real_folds.py`
has the protocol: per fold 14 source + 3 target training normals; 6 source + 7 target normals and all
30 abnormal clips scored; every clip at the same RMS). Each fold is written as a DCASE-layout root, the
recipe is fitted on it once (`asdlab fit`'s code), and the stored embeddings are scored with each
backend. AUC source / target (DCASE 2023 rule: one domain's normals + all anomalies), pAUC and Ω.
Small data (6-7 normals per domain and fold): read the spread, not the third decimal.

    python benchmarks/real_clips.py two-branch-cnn [--set finetune.steps=200] [--backend knn density-knn]
    python benchmarks/real_clips.py baseline --hide-attributes
    python benchmarks/real_clips.py --check-units     # are the two fan sets different units?
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

import _real_folds as folds  # benchmarks/ is on sys.path when run as a script
from _systems import METRICS, System, embed_system, mean_std, score_table

from asdlab.backends.registry import available_backends
from asdlab.pipeline.config_io import parse_override

REPO = Path(__file__).resolve().parents[1]


def fold_roots(work: Path, *, n_folds: int, seed: int, attributes: bool, with_dcase2023: bool) -> list[Path]:
    """Write (or reuse) one DCASE-layout root per fold."""
    tag = f"{'attr' if attributes else 'noattr'}{'-dcase23' if with_dcase2023 else ''}-seed{seed}"
    return [folds.write_fold_root(plan, work / "folds" / tag / f"fold{plan.fold}", attributes=attributes,
                                  with_dcase2023=with_dcase2023)
            for plan in folds.plan_folds(n_folds, seed=seed)]


def run(system: System, roots: list[Path], work: Path, backends: list[str], *, seed: int = 0) -> dict[str, list[dict]]:
    """{backend: [metrics per fold]} for one system."""
    results: dict[str, list[dict]] = {b: [] for b in backends}
    for fold, root in enumerate(roots):
        table, fit_s = embed_system(system, root, work / "systems" / root.parent.name / root.name, seed=seed)
        print(f"  fold {fold}: fitted in {fit_s:.0f} s ({len(table)} clips embedded)", flush=True)
        for backend in backends:
            out = work / "scores" / system.name / root.parent.name / root.name / backend
            try:
                results[backend].append(score_table(table, root, out, backend))
            except Exception as error:  # a backend that cannot fit these banks: report, keep going
                print(f"    {backend}: failed ({type(error).__name__}: {error})")
    return results


def print_table(title: str, results: dict[str, list[dict]]) -> None:
    print(f"\n{title}")
    print(f"| backend | folds | {' | '.join(METRICS)} |")
    print("|---|---|" + "---|" * len(METRICS))
    for backend, rows in results.items():
        cells = [mean_std([r[m] for r in rows]) for m in METRICS]
        print(f"| {backend} | {len(rows)} | {' | '.join(cells)} |")


def check_units() -> None:
    """Are id00 and the extra fan set different units? Long-term spectra, embeddings, a classifier."""
    from scipy.signal import welch
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from asdlab.data.audio import load_audio

    sets = {"id00 normal": folds._clips(folds.ID00 / "normal"), "id00 abnormal": folds._clips(folds.ID00 / "abnormal"),
            "extra normal": folds._clips(folds.EXTRA / "normal"), "extra abnormal": folds._clips(folds.EXTRA / "abnormal")}
    waves = {}
    for name, paths in sets.items():
        clips = [load_audio(p, sample_rate=16000, channel=0).astype(np.float64) for p in paths]
        waves[name] = np.stack([c / np.sqrt(np.mean(c**2)) for c in clips])  # level equalised
    spectra = {}
    for name, w in waves.items():
        freqs, power = welch(w, fs=16000, nperseg=2048, axis=-1)
        spectra[name] = 10 * np.log10(power + 1e-12)  # (clips, 1025) dB
    bands = [(0, 200), (200, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000)]
    print("long-term spectrum (Welch, level-equalised clips), mean dB per band, and the within-set spread")
    print("| set | clips | " + " | ".join(f"{a}-{b} Hz" for a, b in bands) + " | median sd over clips (dB) |")
    print("|---|---|" + "---|" * (len(bands) + 1))
    for name, s in spectra.items():
        m = s.mean(axis=0)
        cells = [f"{m[(freqs >= a) & (freqs < b)].mean():.1f}" for a, b in bands]
        print(f"| {name} | {len(s)} | {' | '.join(cells)} | {np.median(s.std(axis=0)):.2f} |")
    a, b = spectra["id00 normal"], spectra["extra normal"]
    diff = np.abs(a.mean(0) - b.mean(0))
    print(f"\nnormals, id00 vs extra: mean |difference of mean spectra| {diff.mean():.1f} dB (max {diff.max():.1f} dB "
          f"at {freqs[diff.argmax()]:.0f} Hz)")
    for name in ("id00 normal", "extra normal"):
        m = spectra[name].mean(0)
        low = (freqs > 30) & (freqs < 1000)
        peaks = freqs[low][np.argsort(m[low])[::-1][:6]]
        print(f"  strongest components below 1 kHz, {name}: {sorted(peaks.round().astype(int).tolist())} Hz")
    print("  prominence of the 320-340 Hz component over the 250-400 Hz mean, dB, min / median / max per set:")
    for name, s in spectra.items():
        prominence = s[:, (freqs > 320) & (freqs < 340)].max(1) - s[:, (freqs > 250) & (freqs < 400)].mean(1)
        print(f"    {name}: {prominence.min():.1f} / {np.median(prominence):.1f} / {prominence.max():.1f}")

    features = {"log spectrum (1025 bins)": np.concatenate([a, b])}
    try:
        import torch

        from asdlab.encoders.backbone import build_backbone

        mn04 = sorted((folds.SHARED_DATA.parent / "models" / "efficientat-mn04").glob("*.pt"))
        encoders = {"logmel-stats": {}}
        if mn04:
            encoders["mobilenet-mn04 (AudioSet weights)"] = {"weights": str(mn04[0])}
        for label, options in encoders.items():
            backbone = build_backbone(label.split(" ")[0], level="rms", **options).eval()
            with torch.no_grad():
                emb = [backbone(torch.from_numpy(waves[n].astype(np.float32))).numpy() for n in ("id00 normal", "extra normal")]
            features[label] = np.concatenate(emb)
    except Exception as error:  # embeddings are a second opinion: report and go on
        print(f"(embeddings skipped: {error})")
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    print("\nnormals of the two sets told apart (20 id00 vs 10 extra):")
    print("| features | LOO accuracy, logistic regression on 10 PCA comps | 1-NN same-set rate | mean dist within id00 / within extra / between |")
    print("|---|---|---|---|")
    for label, X in features.items():
        clf = make_pipeline(StandardScaler(), PCA(10, random_state=0), LogisticRegression(max_iter=5000))
        accuracy = cross_val_score(clf, X, y, cv=LeaveOneOut()).mean()
        Xs = StandardScaler().fit_transform(X)
        D = np.linalg.norm(Xs[:, None] - Xs[None], axis=-1)
        within0, within1 = D[:20, :20][~np.eye(20, dtype=bool)].mean(), D[20:, 20:][~np.eye(10, dtype=bool)].mean()
        np.fill_diagonal(D, np.inf)
        same = float((y[D.argmin(1)] == y).mean())
        print(f"| {label} | {accuracy:.3f} | {same:.2f} | {within0:.1f} / {within1:.1f} / {D[:20, 20:].mean():.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="shipped recipe name or YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--small-scale", action="store_true", help="apply the recipe's small_scale sizes")
    parser.add_argument("--backend", nargs="+", default=available_backends(), choices=available_backends())
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="fold drawing and training seed")
    parser.add_argument("--hide-attributes", action="store_true", help="name every clip noAttribute")
    parser.add_argument("--with-dcase2023", action="store_true",
                        help="add the DCASE 2023 sample clips as extra training-only machine types")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "real_clips")
    parser.add_argument("--check-units", action="store_true", help="only compare the two fan sets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not folds.available():
        sys.exit(f"MIMII fan samples not found under {folds.SHARED_DATA}")
    if args.check_units:
        check_units()
        return
    if args.recipe is None:
        parser.error("give a RECIPE (or --check-units)")
    overrides = dict(parse_override(item) for item in args.overrides)
    system = System(Path(args.recipe).stem, args.recipe, overrides, small_scale=args.small_scale)
    roots = fold_roots(args.work, n_folds=args.folds, seed=args.seed, attributes=not args.hide_attributes,
                       with_dcase2023=args.with_dcase2023)
    print(f"{system.name} {overrides or ''}{' (small scale)' if args.small_scale else ''}, "
          f"attributes {'hidden' if args.hide_attributes else 'shown'}, {len(roots)} folds under {roots[0].parent}")
    results = run(system, roots, args.work, args.backend, seed=args.seed)
    print_table(f"{system.name}: mean ± std over {len(roots)} folds (real MIMII fan; source id00, target extra set)",
                results)


if __name__ == "__main__":
    main()
