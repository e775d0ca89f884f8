# ImageNet-1k, CSWin family: CSWin-T with AttnZero in stages 1-2, softmax cross-shaped windows in
# stages 3-4 (the paper's placement). The other CSWin sizes and the softmax baselines inherit this
# file.
_base_ = '../_base_/in1k_8xb128-300e.py'

model = dict(
    model_name='attnzero_cswin_tiny', attn=('attnzero', 'attnzero', 'softmax', 'softmax'),
    drop_path_rate=0.2)
# CSWin keeps an exponential moving average of the weights (evaluated and saved)
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
