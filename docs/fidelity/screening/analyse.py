"""Kendall tau-b of each score of a screening file (ema_loss_screen.py's output) against the
published DeiT-T ranking: of the mean over the seeds every attention finished, and per seed."""
import json, sys, numpy as np
from scipy.stats import kendalltau
from attnzero.search.fidelity import published
PUB = {n: r['top1'] for n, r in published()['backbones']['deit_t']['rows'].items()}
recs = [json.loads(l) for l in open(sys.argv[1])]
cols = [c for c in recs[0] if c.startswith(('acc', 'ema', 'swa', 'loss', 'ckpt')) and c!='seconds']
seeds = sorted({r['s'] for r in recs if all(any(x['name']==n and x['s']==r['s'] for x in recs) for n in PUB)})
print('complete seeds', seeds)
names = list(PUB)
for c in cols:
    sign = -1 if 'loss' in c else 1
    M = np.array([[sign*next(r[c] for r in recs if r['name']==n and r['s']==s) for n in names] for s in seeds])
    per = [kendalltau(M[i], [PUB[n] for n in names]).statistic for i in range(len(seeds))]
    mean = M.mean(0)
    t = kendalltau(mean, [PUB[n] for n in names]).statistic
    sd = M.std(0, ddof=1).mean() if len(seeds)>1 else 0
    order = ' '.join(f'{n[:5]}{abs(m):.3f}' for m, n in sorted(zip(mean, names), reverse=True))
    print(f'{c:14s} tau(mean)={t:.3f} per-seed={np.round(per,2)} mean-sd={sd:.3f} | {order}')
