"""Offline ranking quality of the search's prior: the model of ``attnzero.search.prior.Prior`` fitted
on a bench file's random-stream genomes at the rung, predicting the rung scores of the genomes the
bench took from the efficiency search runs (``source:kind=search``).

    python docs/efficiency/search/prior/offline_tau.py attnzero/data/attn-bench-101-v2/bench.jsonl

Prints one line per feature set: Kendall tau, and the mean rung score of the quarter the model ranks
best against all of them and against the true best quarter.
"""
import argparse

import numpy as np
from scipy.stats import kendalltau

from attnzero.search.prior import Prior, load_rows

KEY = 'scores:0.6667'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('bench_jsonl', help="a multi-fidelity bench's bench.jsonl (or a file of its lines)")
    p.add_argument('--features', default='syntax,syntax+probe,syntax+probe+grad')
    args = p.parse_args()
    texts, y = load_rows(args.bench_jsonl, KEY, 'source:kind=search')
    n_fit = len(load_rows(args.bench_jsonl, KEY, 'source:kind=random')[0])
    q = len(y) // 4
    for feats in args.features.split(','):
        pred = Prior.fit(args.bench_jsonl, key=KEY, where='source:kind=random', features=feats).predict(texts)
        best = np.argsort(-pred, kind='stable')[:q]
        print(f'{feats}: fitted on {n_fit} random genomes, {len(y)} search-run genomes: '
              f'tau {kendalltau(pred, y)[0]:.3f}; best quarter by the model {y[best].mean():.3f}, '
              f'all {y.mean():.3f}, true best quarter {np.sort(y)[-q:].mean():.3f}')


if __name__ == '__main__':
    main()
