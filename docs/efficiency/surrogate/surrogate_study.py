"""Can an accuracy surrogate defer candidates of a search on the default proxy? (issue 17)

    python docs/efficiency/surrogate/surrogate_study.py            # writes surrogate.{md,csv,png} here

Fits models from genome features (:func:`attnzero.space.features.genome_features`, the bench
surrogate's) to the default proxy's trained accuracies and measures their held-out Kendall tau-b
in three settings:

* ``fidelity, leave-one-out`` -- the 30 sampled genomes of the default proxy's fidelity run
  (``docs/fidelity/default/stability.csv``, score at 1x the budget, mean over its seeds);
* ``searches, leave-one-out`` -- every distinct genome the efficiency measurement's searches
  trained to the full budget (``docs/efficiency/search/default/seed-*/*/evaluations.jsonl``; a
  genome trained by several runs gets its mean accuracy);
* ``online`` -- what a surrogate inside a search would see: for each run and each generation
  ``g >= 1``, fit on the run's own full-budget results of generations ``< g`` and rank that
  generation's trained candidates; the tau of each generation with at least 3 of them, and their
  mean.

Nothing here is timed. Models: scikit-learn's BayesianRidge (standardised features),
RandomForestRegressor (200 trees, min 2 samples per leaf) and KNeighborsRegressor (k=3,
standardised).
"""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import warnings

import numpy as np
from scipy.stats import kendalltau

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, ROOT)

from attnzero.io import atomic_savefig, atomic_write_text  # noqa: E402
from attnzero.space import Genome  # noqa: E402
from attnzero.space.features import genome_features  # noqa: E402

FIDELITY = os.path.join(ROOT, 'docs', 'fidelity', 'default', 'stability.csv')
SEARCHES = os.path.join(ROOT, 'docs', 'efficiency', 'search', 'default')
COMMAND = 'python docs/efficiency/surrogate/surrogate_study.py'


def models():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import BayesianRidge
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return {
        'bayesian_ridge': lambda: make_pipeline(StandardScaler(), BayesianRidge()),
        'random_forest': lambda: RandomForestRegressor(200, min_samples_leaf=2, random_state=0),
        'knn3': lambda: make_pipeline(StandardScaler(), KNeighborsRegressor(3)),
    }


def features(text: str) -> np.ndarray:
    return genome_features(Genome.parse(text.split('|')[-1]))


def loo_tau(X: np.ndarray, y: np.ndarray, make) -> float:
    pred = []
    for i in range(len(y)):
        keep = np.ones(len(y), bool)
        keep[i] = False
        pred.append(make().fit(X[keep], y[keep]).predict(X[i:i + 1])[0])
    return float(kendalltau(pred, y).statistic)


def fidelity_set():
    with open(FIDELITY) as f:
        rows = list(csv.DictReader(f))
    return [r['genome'] for r in rows], np.array([float(r['score_1x']) for r in rows])


def search_runs(searches: str):
    runs = {}
    for path in sorted(glob.glob(os.path.join(searches, 'seed-*', '*', 'evaluations.jsonl'))):
        recs = [json.loads(line) for line in open(path) if line.strip()]
        full = [r for r in recs if r['status'] == 'ok' and not str(r.get('stage', '')).startswith('rung')]
        runs[os.path.relpath(os.path.dirname(path), searches)] = full
    return runs


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--searches', default=SEARCHES, help='a search_efficiency.py output folder')
    p.add_argument('--out', default=HERE)
    args = p.parse_args(argv)
    out = args.out
    os.makedirs(out, exist_ok=True)
    warnings.filterwarnings('ignore')
    made = models()
    rows = []
    g, y = fidelity_set()
    X = np.stack([features(t) for t in g])
    for name, make in made.items():
        rows.append(dict(setting='fidelity, leave-one-out', model=name, n=len(y), tau=loo_tau(X, y, make)))
    runs = search_runs(args.searches)
    pool = {}
    for recs in runs.values():
        for r in recs:
            pool.setdefault(r['hash'], (r['genome'], []))[1].append(float(r['acc_mean']))
    texts = sorted(pool)
    Xs = np.stack([features(pool[h][0]) for h in texts])
    ys = np.array([np.mean(pool[h][1]) for h in texts])
    for name, make in made.items():
        rows.append(dict(setting='searches, leave-one-out', model=name, n=len(ys), tau=loo_tau(Xs, ys, make)))
    online = []
    for run, recs in runs.items():
        gens = sorted({r['gen'] for r in recs})
        for gen in gens[1:]:
            train = [r for r in recs if r['gen'] < gen]
            test = [r for r in recs if r['gen'] == gen]
            if len(train) < 4 or len(test) < 3:
                continue
            Xtr = np.stack([features(r['genome']) for r in train])
            ytr = np.array([r['acc_mean'] for r in train])
            Xte = np.stack([features(r['genome']) for r in test])
            yte = np.array([r['acc_mean'] for r in test])
            for name, make in made.items():
                t = kendalltau(make().fit(Xtr, ytr).predict(Xte), yte).statistic
                online.append(dict(run=run, gen=gen, model=name, n_train=len(train), n_test=len(test),
                                   tau=float(t) if np.isfinite(t) else float('nan')))
    for name in made:
        taus = [o['tau'] for o in online if o['model'] == name and np.isfinite(o['tau'])]
        rows.append(dict(setting='online (per generation, mean)', model=name,
                         n=len(taus), tau=float(np.mean(taus)) if taus else float('nan')))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(['setting', 'model', 'n', 'tau'])
    for r in rows:
        w.writerow([r['setting'], r['model'], r['n'], f'{r["tau"]:.4f}'])
    w.writerow([])
    w.writerow(['run', 'gen', 'model', 'n_train', 'n_test', 'tau'])
    for o in online:
        w.writerow([o['run'], o['gen'], o['model'], o['n_train'], o['n_test'], f'{o["tau"]:.4f}'])
    atomic_write_text(os.path.join(out, 'surrogate.csv'), buf.getvalue())
    md = ['# An accuracy surrogate on the default proxy: held-out rank agreement', '', 'Produced by:', '',
          '```bash', COMMAND, '```', '', (__doc__.split('\n\n', 2)[2]).strip(), '',
          '| setting | model | n | Kendall tau-b |', '|---|---|---|---|']
    for r in rows:
        md.append(f'| {r["setting"]} | {r["model"]} | {r["n"]} | {r["tau"]:+.3f} |')
    md += ['', '`n`: genomes (leave-one-out) or generations with a tau (online). The per-generation '
           'figures are in `surrogate.csv`.']
    atomic_write_text(os.path.join(out, 'surrogate.md'), '\n'.join(md) + '\n')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.2))
    settings = list(dict.fromkeys(r['setting'] for r in rows))
    width = 0.8 / len(made)
    for j, name in enumerate(made):
        vals = [next(r['tau'] for r in rows if r['setting'] == s and r['model'] == name) for s in settings]
        ax.bar(np.arange(len(settings)) + j * width, vals, width, label=name)
    ax.axhline(0, color='k', lw=0.8)
    ax.set_xticks(np.arange(len(settings)) + width * (len(made) - 1) / 2)
    ax.set_xticklabels([s.split(' (')[0] for s in settings], fontsize=8)
    ax.set_ylabel('held-out Kendall tau-b')
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, os.path.join(out, 'surrogate.png'), dpi=100)
    print('\n'.join(md))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
