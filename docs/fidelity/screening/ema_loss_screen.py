"""Screening (docs/fidelity/DESIGN.md, fourth round): does scoring a proxy run differently rank the
published attentions better? One training per (attention, seed) of the default proxy, exactly as
``attnzero.search.train.train_proxy`` trains it without rejection (the fidelity tool's common seeds:
``candidate_seed(cfg, name, 'deit', s)``), scored five ways at the end: the final weights' validation
accuracy (``acc``, what the search uses; bit-identical to the fidelity tool's runs) and validation
loss, an EMA of the weights (timm ``ModelEmaV3``, decays 0.99/0.995/0.998, started at the initial
weights) and a uniform average of the second half's weights (``torch.optim.swa_utils.AveragedModel``).

Command (2 worker processes, one thread each; appends to OUT and skips finished runs)::

    PYTHONPATH=. python docs/fidelity/screening/ema_loss_screen.py \
        docs/fidelity/screening/ema_loss_5seeds.jsonl \
        focused,trial_105,agent,softmax,hydra,relu_linear,linear 0,1,2,3,4
    python docs/fidelity/screening/analyse.py docs/fidelity/screening/ema_loss_5seeds.jsonl
"""
import json, math, os, sys, time
from multiprocessing import get_context
import torch, torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from timm.utils import ModelEmaV3
from attnzero.search import config as C
from attnzero.search.evaluate import candidate_seed
from attnzero.search.fidelity import REFERENCES
from attnzero.search.proxies import load_proxy
from attnzero.search.train import (deterministic_torch, init_proxy_model, proxy_optimizer,
                                   steps_per_epoch, _lr_at, _accuracy)
DECAYS = (0.99, 0.995, 0.998)
OUT = sys.argv[1]

def val_metrics(model, data):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(data.val_x[i:i + 512]) for i in range(0, len(data.val_x), 512)])
    model.train()
    return float((logits.argmax(1) == data.val_y).double().mean()), float(F.cross_entropy(logits, data.val_y))

def job(args):
    name, s, over = args
    cfg = C.SearchConfig().replace(**over)
    data = load_proxy(cfg.proxy)
    attn, genome = REFERENCES[name]
    seed = candidate_seed(cfg, name, 'deit', s)
    t0 = time.perf_counter()
    with deterministic_torch(1):
        model = init_proxy_model('deit', attn, genome, data, cfg, seed)
        opt = proxy_optimizer(model, cfg)
        emas = {d: ModelEmaV3(model, decay=d) for d in DECAYS}
        n = len(data.train_x); spe = steps_per_epoch(n, cfg.batch_size); total = cfg.epochs * spe
        swa = None
        gen = torch.Generator().manual_seed(seed); step = 0; model.train()
        for epoch in range(1, cfg.epochs + 1):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                for g in opt.param_groups:
                    g['lr'] = _lr_at(step, total, cfg.lr, cfg.warmup_frac)
                loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
                step += 1
                opt.zero_grad(set_to_none=True); loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                for e in emas.values():
                    e.update(model, step=step)
                if step > total // 2:
                    if swa is None:
                        swa = AveragedModel(model)
                    else:
                        swa.update_parameters(model)
            if epoch == cfg.checkpoint_epoch:
                ck = _accuracy(model, data.val_x, data.val_y)
        rec = dict(name=name, s=s, seed=seed, ckpt=ck)
        rec['acc'], rec['loss'] = val_metrics(model, data)
        for d, e in emas.items():
            rec[f'ema{d}'], rec[f'emaloss{d}'] = val_metrics(e.module, data)
        rec['swa'], rec['swaloss'] = val_metrics(swa.module, data)
    rec['seconds'] = time.perf_counter() - t0
    return rec

if __name__ == '__main__':
    names = sys.argv[2].split(',')
    seeds = [int(x) for x in sys.argv[3].split(',')]
    over = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    done = set()
    if os.path.exists(OUT):
        done = {(json.loads(l)['name'], json.loads(l)['s']) for l in open(OUT)}
    jobs = [(n, s, over) for s in seeds for n in names if (n, s) not in done]
    with get_context('forkserver').Pool(2) as pool:
        for rec in pool.imap_unordered(job, jobs):
            with open(OUT, 'a') as f:
                f.write(json.dumps(rec) + '\n')
            print(rec['name'], rec['s'], round(rec['acc'], 4), round(rec['seconds'], 1), flush=True)
